//! The built-in SGEMM: BLIS-style packing and cache blocking around register-blocked
//! micro-kernels (AVX-512, AVX2+FMA, portable), chosen at run time.
//!
//! Row-major C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C. Loops, outer to
//! inner: jc over N by NC, pc over K by KC (pack op(B)[pc.., jc..] into NR-wide panels),
//! ic over M by MC (pack op(A)[ic.., pc..] into MR-high panels), ir over the MR panels (the
//! A micro-panel stays in L1), jr over the NR panels (streaming from L2/L3), then the
//! micro-kernel over the KC depth. Transposes are folded into packing. Edge tiles go
//! through a small MR x NR buffer. Multi-threaded by splitting C into one block of columns
//! (or rows) per pool thread, each with its own packing buffers.
//!
//! Tuning knobs (for measurements): SQUALL_GEMM_KERNEL=avx512|avx2|scalar and
//! SQUALL_GEMM_BLOCK=kc,mc,nc. `cargo run --release --example gemm -- 1024 2 builtin openblas mkl`
//! prints GFLOP/s.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::parallel;

/// Micro-kernel: C[0..MR, 0..NR] (row stride ldc) = alpha * Apanel * Bpanel + beta * C,
/// where Apanel is kc x MR (MR values per depth step) and Bpanel kc x NR. beta == 0 means
/// C is not read.
type Ukr = unsafe fn(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32);

/// A micro-kernel and the blocking that suits it.
#[derive(Clone, Copy)]
pub struct Kernel {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
    ukr: Ukr,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}x{}, kc {}, mc {}, nc {})", self.name, self.mr, self.nr, self.kc, self.mc, self.nc)
    }
}

/// Every kernel this CPU can run, best first.
pub fn available_kernels() -> Vec<Kernel> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            v.push(AVX512);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(AVX2);
        }
    }
    v.push(SCALAR);
    v
}

/// The kernel used by `sgemm`: the best available, or SQUALL_GEMM_KERNEL=avx512|avx2|scalar.
pub fn kernel() -> Kernel {
    static K: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *K.get_or_init(|| {
        let all = available_kernels();
        let mut k = all[0];
        if let Ok(want) = std::env::var("SQUALL_GEMM_KERNEL") {
            if let Some(f) = all.iter().find(|k| k.name == want.trim()) {
                k = *f;
            }
        }
        if let Ok(b) = std::env::var("SQUALL_GEMM_BLOCK") {
            let v: Vec<usize> = b.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if v.len() == 3 && v.iter().all(|&x| x > 0) {
                k.kc = v[0];
                k.mc = v[1].div_ceil(k.mr) * k.mr;
                k.nc = v[2].div_ceil(k.nr) * k.nr;
            }
        }
        k
    })
}

// Micro-kernels and blocking measured by `bench/kernels --sections gemm-tuning` (each kernel
// and blockings around the default in their own processes, paired rounds, one thread,
// beside OpenBLAS): bench/results/kernels-gemm-tuning.md. On the AMD EPYC Zen 5 2-core VM
// (family 26 model 2), 1024^3: this kernel with kc 512 / mc 336 ~180 GFLOP/s, 0.99x
// OpenBLAS 0.3.21 with its own Cooperlake kernels and 1.8x OpenBLAS with the Haswell kernels
// OPENBLAS_CORETYPE forces here; on the 64x3136x576 im2col shape 0.88x OpenBLAS (probably
// because M = 64 is not a multiple of MR = 14; not measured). kc 256 / kc 768 / mc 168 / nc 512 were within the machine's
// noise of the default (0.89-1.12x in that run, 0.98-1.21x in a second one under load), so
// the default stays. The AVX2 6x16 kernel ran 0.54-0.60x of it, the portable one 0.14-0.22x.
// (The 14x32 shape comes from an earlier one-off comparison at 1024^3: ahead of 8x32, 12x32,
// 6x64 and 8x48 by 1-9%, and the ir-outside-jr loop order 5-10% ahead of jr-outside-ir.)
#[cfg(target_arch = "x86_64")]
const AVX512: Kernel = Kernel { name: "avx512", mr: 14, nr: 32, kc: 512, mc: 336, nc: 4096, ukr: ukr_avx512_14x32 };
#[cfg(target_arch = "x86_64")]
const AVX2: Kernel = Kernel { name: "avx2", mr: 6, nr: 16, kc: 512, mc: 192, nc: 4096, ukr: ukr_avx2_6x16 };
const SCALAR: Kernel = Kernel { name: "scalar", mr: 4, nr: 16, kc: 256, mc: 64, nc: 4096, ukr: ukr_scalar_4x16 };

/// Below this many multiply-adds a call stays on one thread.
pub(crate) const PARALLEL_MIN_WORK: usize = 96 * 96 * 96;

/// Row-major SGEMM with the built-in kernels. `threads` > 1 splits the work over the
/// pool (ignored inside a pool task). Panics when a slice is too short for its shape.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(trans_a: bool, trans_b: bool, m: usize, n: usize, k: usize, alpha: f32, a: &[f32], lda: usize,
             b: &[f32], ldb: usize, beta: f32, c: &mut [f32], ldc: usize, threads: usize) {
    sgemm_with(kernel(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads)
}

/// Elements a row-major `rows x cols` matrix with row stride `ld` spans.
pub fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 { 0 } else { (rows - 1) * ld + cols }
}

/// `sgemm` with an explicit micro-kernel (tests and benchmarks compare them).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with(kern: Kernel, trans_a: bool, trans_b: bool, m: usize, n: usize, k: usize, alpha: f32, a: &[f32],
                  lda: usize, b: &[f32], ldb: usize, beta: f32, c: &mut [f32], ldc: usize, threads: usize) {
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    assert!(lda >= ac && ldb >= bc && ldc >= n, "sgemm: leading dimension smaller than the row");
    assert!(a.len() >= span(ar, ac, lda), "sgemm: a too short");
    assert!(b.len() >= span(br, bc, ldb), "sgemm: b too short");
    assert!(c.len() >= span(m, n, ldc), "sgemm: c too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    // op(A)(i, p) = a[i * ars + p * acs]; op(B)(p, j) = b[p * brs + j * bcs].
    let (ars, acs) = if trans_a { (1, lda) } else { (lda, 1) };
    let (brs, bcs) = if trans_b { (1, ldb) } else { (ldb, 1) };
    let g = Gemm { kern, k, alpha, a: a.as_ptr(), ars, acs, b: b.as_ptr(), brs, bcs, beta, c: c.as_mut_ptr(), ldc };
    let threads = if parallel::in_pool_task() { 1 } else { threads.max(1) };
    if threads == 1 || m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_WORK {
        // SAFETY: the asserts above bound every index the blocked loops form.
        unsafe { g.run(0..m, 0..n) };
        return;
    }
    parallel::exclusive(|| {
        // Read under the gate: the pool cannot be resized until this call returns.
        let parts = threads.min(parallel::threads());
        let gs = SendGemm(g);
        if parts > 1 && m / parts >= kern.mc / 2 {
            // Tall enough for every task to fill its own A blocks: split M, share packed B.
            let kc_max = kern.kc.min(k);
            let nc_max = kern.nc.min(n).div_ceil(kern.nr) * kern.nr;
            let half = nc_max * kc_max + 16;
            let mut shared = SHARED_B.lock().unwrap_or_else(|e| e.into_inner());
            if shared.len() < 2 * half {
                *shared = vec![0.0; 2 * half];
            }
            let base = shared.as_mut_ptr();
            let off = base.align_offset(64).min(15);
            // SAFETY: both halves (each nc_max * kc_max after a < 16 offset) lie inside the vector.
            let bufs = unsafe { [SendPtr(base.add(off)), SendPtr(base.add(half + off))] };
            let barrier = SpinBarrier::new(parts);
            parallel::parallel_for(parts, |t| {
                // SAFETY: parts <= pool size with the gate held, so all tasks run at once; bufs as sized above.
                unsafe { gs.get().run_shared_b(t, parts, m, n, bufs, &barrier) };
            });
            return;
        }
        // Otherwise one block of C per thread: split N (in NR units) when it is wide enough, else M.
        let split_n = n / kern.nr >= parts || n >= m;
        parallel::parallel_for(parts, |t| {
            let g = gs.get();
            let (rm, rn) = if split_n {
                (0..m, parallel::split_range(n, parts, kern.nr, t))
            } else {
                (parallel::split_range(m, parts, kern.mr, t), 0..n)
            };
            if !rm.is_empty() && !rn.is_empty() {
                // SAFETY: blocks of C are disjoint across tasks; A and B are only read.
                unsafe { g.run(rm, rn) };
            }
        });
    });
}

fn scale_c(m: usize, n: usize, beta: f32, c: &mut [f32], ldc: usize) {
    for i in 0..m {
        let row = &mut c[i * ldc..i * ldc + n];
        if beta == 0.0 {
            row.fill(0.0);
        } else if beta != 1.0 {
            for v in row {
                *v *= beta;
            }
        }
    }
}

struct Gemm {
    kern: Kernel,
    k: usize,
    alpha: f32,
    a: *const f32,
    ars: usize,
    acs: usize,
    b: *const f32,
    brs: usize,
    bcs: usize,
    beta: f32,
    c: *mut f32,
    ldc: usize,
}

struct SendGemm(Gemm);
// SAFETY: tasks read A and B and write disjoint blocks of C; the caller keeps all alive.
unsafe impl Sync for SendGemm {}

impl SendGemm {
    fn get(&self) -> &Gemm {
        &self.0
    }
}

/// 64-byte aligned scratch, kept per thread so calls do not allocate.
struct Scratch {
    buf: Vec<f32>,
}

impl Scratch {
    fn get(&mut self, len: usize) -> *mut f32 {
        let need = len + 16;
        if self.buf.len() < need {
            self.buf = vec![0.0; need];
        }
        let p = self.buf.as_mut_ptr();
        let off = p.align_offset(64).min(15);
        // SAFETY: off < 16 and the buffer holds len + 16 elements.
        unsafe { p.add(off) }
    }
}

thread_local! {
    static PACK_A: RefCell<Scratch> = const { RefCell::new(Scratch { buf: Vec::new() }) };
    static PACK_B: RefCell<Scratch> = const { RefCell::new(Scratch { buf: Vec::new() }) };
}

impl Gemm {
    /// Computes the block rows × cols of C, serially.
    ///
    /// # Safety
    /// The pointers and strides must address valid matrices of the stated sizes, and no
    /// other thread may write the same block of C.
    unsafe fn run(&self, rows: Range<usize>, cols: Range<usize>) {
        let kern = self.kern;
        let kc_max = kern.kc.min(self.k);
        let nc_max = kern.nc.min(cols.len()).div_ceil(kern.nr) * kern.nr;
        PACK_B.with(|pb| {
            let bp = pb.borrow_mut().get(nc_max * kc_max);
            let mut jc = cols.start;
            while jc < cols.end {
                let ncb = kern.nc.min(cols.end - jc);
                let mut pc = 0;
                while pc < self.k {
                    let kcb = kern.kc.min(self.k - pc);
                    // SAFETY: op(B)[pc..pc+kcb, jc..jc+ncb] is inside B; bp holds nc_max * kc_max.
                    unsafe {
                        pack_b(kern.nr, kcb, ncb, self.b.add(pc * self.brs + jc * self.bcs), self.brs, self.bcs, bp);
                        self.macro_block(rows.clone(), jc, ncb, pc, kcb, bp);
                    }
                    pc += kcb;
                }
                jc += ncb;
            }
        })
    }

    /// Task `t` of `parts` concurrent tasks computing all of C, the way BLIS and OpenBLAS
    /// thread the M loop: each task owns a band of rows and packs only its A blocks, while
    /// every B block is packed once, a slice per task, into a buffer all tasks read. Two
    /// B buffers alternate, so one barrier per block suffices: a task can only start packing
    /// block s + 1 (over block s - 1's buffer) once everyone has reached barrier s, which is
    /// after they finished computing with block s - 1.
    ///
    /// # Safety
    /// As for `run`; `bufs` must each hold nc_max * kc_max values for this call's blocking,
    /// all `parts` tasks must run concurrently, and each must be called with the same `bufs`.
    unsafe fn run_shared_b(&self, t: usize, parts: usize, m: usize, n: usize, bufs: [SendPtr; 2], barrier: &SpinBarrier) {
        let kern = self.kern;
        let rows = parallel::split_range(m, parts, kern.mr, t);
        let mut step = 0usize;
        let mut jc = 0;
        while jc < n {
            let ncb = kern.nc.min(n - jc);
            let panels = ncb.div_ceil(kern.nr);
            let mine = parallel::split_range(panels, parts, 1, t);
            let mut pc = 0;
            while pc < self.k {
                let kcb = kern.kc.min(self.k - pc);
                let bp = bufs[step % 2].0;
                if !mine.is_empty() {
                    let c0 = mine.start * kern.nr;
                    let c1 = (mine.end * kern.nr).min(ncb);
                    // SAFETY: columns c0..c1 of the block are inside B, and panel c0 / nr of the
                    // buffer starts at c0 * kcb; other tasks write other panels.
                    unsafe {
                        pack_b(kern.nr, kcb, c1 - c0, self.b.add(pc * self.brs + (jc + c0) * self.bcs), self.brs,
                               self.bcs, bp.add(c0 * kcb))
                    };
                }
                barrier.wait();
                if !rows.is_empty() {
                    // SAFETY: the whole block is packed (barrier above); rows are this task's own.
                    unsafe { self.macro_block(rows.clone(), jc, ncb, pc, kcb, bp) };
                }
                step += 1;
                pc += kcb;
            }
            jc += ncb;
        }
    }

    /// Multiplies rows × op(A)[.., pc..pc+kcb] by the packed B block bp (kcb × ncb at
    /// column jc) into C, packing A in MC-row blocks into this thread's scratch.
    ///
    /// # Safety
    /// bp must hold the packed block; rows and the block must lie inside A and C.
    unsafe fn macro_block(&self, rows: Range<usize>, jc: usize, ncb: usize, pc: usize, kcb: usize, bp: *const f32) {
        let kern = self.kern;
        let (mr, nr) = (kern.mr, kern.nr);
        let beta = if pc == 0 { self.beta } else { 1.0 };
        let mc_max = kern.mc.min(rows.len()).div_ceil(mr) * mr;
        PACK_A.with(|pa| {
            let ap = pa.borrow_mut().get(mc_max * kern.kc.min(self.k));
            let mut tile = [0.0f32; 16 * 64];
            let mut ic = rows.start;
            while ic < rows.end {
                let mcb = kern.mc.min(rows.end - ic);
                // SAFETY: op(A)[ic..ic+mcb, pc..pc+kcb] is inside A; ap holds mc_max * kc.
                unsafe { pack_a(mr, mcb, kcb, self.a.add(ic * self.ars + pc * self.acs), self.ars, self.acs, ap) };
                // The A micro-panel stays in L1 while the B panels stream past it.
                for ir in (0..mcb).step_by(mr) {
                    for jr in (0..ncb).step_by(nr) {
                        let nrb = nr.min(ncb - jr);
                        let mrb = mr.min(mcb - ir);
                        // SAFETY: panels jr / nr and ir / mr of the packed blocks; the C tile is inside the block.
                        unsafe {
                            let bpanel = bp.add(jr * kcb);
                            let apanel = ap.add(ir * kcb);
                            let cptr = self.c.add((ic + ir) * self.ldc + jc + jr);
                            if mrb == mr && nrb == nr {
                                (kern.ukr)(kcb, apanel, bpanel, cptr, self.ldc, self.alpha, beta);
                            } else {
                                let t = tile.as_mut_ptr();
                                (kern.ukr)(kcb, apanel, bpanel, t, nr, self.alpha, 0.0);
                                for i in 0..mrb {
                                    for j in 0..nrb {
                                        let cv = cptr.add(i * self.ldc + j);
                                        let v = *t.add(i * nr + j);
                                        *cv = if beta == 0.0 { v } else { v + beta * *cv };
                                    }
                                }
                            }
                        }
                    }
                }
                ic += mcb;
            }
        })
    }
}

/// A raw pointer to shared packing space, handed to concurrent tasks.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint panels and read only after the barrier that ends the writes.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// A reusable barrier for the tasks of one parallel_for, which all run at once. It spins
/// (the waits are microseconds between GEMM blocks), yielding when a peer was descheduled.
struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(parties: usize) -> SpinBarrier {
        SpinBarrier { parties, arrived: AtomicUsize::new(0), generation: AtomicUsize::new(0) }
    }

    fn wait(&self) {
        let gen = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == gen {
            if spins < 4096 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The shared B buffers of `run_shared_b`, kept between calls so large GEMMs do not map
/// fresh pages every time. Only touched with the pool's gate held.
static SHARED_B: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Packs op(A)[0..mc, 0..kc] (element (i, p) at a[i * rs + p * cs]) into MR-high panels:
/// panel q holds, for each p, rows q*MR .. q*MR+MR (zero past mc).
///
/// # Safety
/// `a` must address the whole block; `dst` must hold ceil(mc / mr) * mr * kc values.
unsafe fn pack_a(mr: usize, mc: usize, kc: usize, a: *const f32, rs: usize, cs: usize, dst: *mut f32) {
    let mut q = 0;
    while q < mc {
        let rows = mr.min(mc - q);
        // SAFETY: see the function contract.
        unsafe {
            let d = dst.add(q * kc);
            if cs == 1 {
                for i in 0..rows {
                    let src = a.add((q + i) * rs);
                    for p in 0..kc {
                        *d.add(p * mr + i) = *src.add(p);
                    }
                }
            } else {
                for p in 0..kc {
                    let src = a.add(q * rs + p * cs);
                    let dp = d.add(p * mr);
                    if rs == 1 {
                        std::ptr::copy_nonoverlapping(src, dp, rows);
                    } else {
                        for i in 0..rows {
                            *dp.add(i) = *src.add(i * rs);
                        }
                    }
                }
            }
            if rows < mr {
                for p in 0..kc {
                    for i in rows..mr {
                        *d.add(p * mr + i) = 0.0;
                    }
                }
            }
        }
        q += mr;
    }
}

/// Packs op(B)[0..kc, 0..nc] (element (p, j) at b[p * rs + j * cs]) into NR-wide panels:
/// panel q holds, for each p, columns q*NR .. q*NR+NR (zero past nc).
///
/// # Safety
/// `b` must address the whole block; `dst` must hold ceil(nc / nr) * nr * kc values.
unsafe fn pack_b(nr: usize, kc: usize, nc: usize, b: *const f32, rs: usize, cs: usize, dst: *mut f32) {
    let mut q = 0;
    while q < nc {
        let cols = nr.min(nc - q);
        // SAFETY: see the function contract.
        unsafe {
            let d = dst.add(q * kc);
            if cs == 1 {
                for p in 0..kc {
                    let src = b.add(p * rs + q);
                    let dp = d.add(p * nr);
                    std::ptr::copy_nonoverlapping(src, dp, cols);
                    for j in cols..nr {
                        *dp.add(j) = 0.0;
                    }
                }
            } else {
                for j in 0..cols {
                    let src = b.add((q + j) * cs);
                    for p in 0..kc {
                        *d.add(p * nr + j) = *src.add(p * rs);
                    }
                }
                if cols < nr {
                    for p in 0..kc {
                        for j in cols..nr {
                            *d.add(p * nr + j) = 0.0;
                        }
                    }
                }
            }
        }
        q += nr;
    }
}

// ---- micro-kernels ----------------------------------------------------------------------

macro_rules! avx512_kernel {
    ($name:ident, $inner:ident, $mr:expr, $nv:expr) => {
        #[cfg(target_arch = "x86_64")]
        unsafe fn $name(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
            // SAFETY: only installed when avx512f was detected; pointers per the Ukr contract.
            unsafe { $inner::<$mr, $nv>(kc, a, b, c, ldc, alpha, beta) }
        }
    };
}

/// AVX-512 micro-kernel, MR rows x (NV * 16) columns, accumulators in zmm registers.
///
/// # Safety
/// Requires avx512f; `a`, `b` must hold kc * MR and kc * NV*16 values, `c` an MR x NV*16 tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::needless_range_loop)] // register arrays indexed by unrolled constant loops
unsafe fn ukr_avx512<const MR: usize, const NV: usize>(kc: usize, a: *const f32, b: *const f32, c: *mut f32,
                                                         ldc: usize, alpha: f32, beta: f32) {
    const NR16: usize = 16;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut ap = a;
    let mut bp = b;
    // SAFETY: reads stay inside the packed panels (kc steps of MR and NV*16 values); writes inside the C tile.
    unsafe {
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + NV * NR16 - 1) as *const i8);
        }
        for _ in 0..kc {
            let mut bv = [_mm512_setzero_ps(); NV];
            for v in 0..NV {
                bv[v] = _mm512_loadu_ps(bp.add(v * NR16));
            }
            for i in 0..MR {
                let ai = _mm512_set1_ps(*ap.add(i));
                for v in 0..NV {
                    acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
                }
            }
            ap = ap.add(MR);
            bp = bp.add(NV * NR16);
        }
        let va = _mm512_set1_ps(alpha);
        if beta == 0.0 {
            for i in 0..MR {
                for v in 0..NV {
                    _mm512_storeu_ps(c.add(i * ldc + v * NR16), _mm512_mul_ps(va, acc[i][v]));
                }
            }
        } else {
            let vb = _mm512_set1_ps(beta);
            for i in 0..MR {
                for v in 0..NV {
                    let p = c.add(i * ldc + v * NR16);
                    _mm512_storeu_ps(p, _mm512_fmadd_ps(vb, _mm512_loadu_ps(p), _mm512_mul_ps(va, acc[i][v])));
                }
            }
        }
    }
}

avx512_kernel!(ukr_avx512_14x32, ukr_avx512, 14, 2);


/// AVX2+FMA micro-kernel, 6 x 16 (12 ymm accumulators).
///
/// # Safety
/// Requires avx2 and fma; pointers per the Ukr contract with MR = 6, NR = 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // register arrays indexed by unrolled constant loops
unsafe fn ukr_avx2_6x16(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    const MR: usize = 6;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let mut ap = a;
    let mut bp = b;
    // SAFETY: reads stay inside the packed panels; writes inside the 6 x 16 tile of C.
    unsafe {
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for i in 0..MR {
                let ai = _mm256_broadcast_ss(&*ap.add(i));
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            }
            ap = ap.add(MR);
            bp = bp.add(16);
        }
        let va = _mm256_set1_ps(alpha);
        let vb = _mm256_set1_ps(beta);
        for i in 0..MR {
            for v in 0..2 {
                let p = c.add(i * ldc + v * 8);
                let r = _mm256_mul_ps(va, acc[i][v]);
                let r = if beta == 0.0 { r } else { _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), r) };
                _mm256_storeu_ps(p, r);
            }
        }
    }
}

/// Portable micro-kernel, 4 x 16 (the compiler vectorises it with the baseline ISA).
///
/// # Safety
/// Pointers per the Ukr contract with MR = 4, NR = 16.
#[allow(clippy::needless_range_loop)]
unsafe fn ukr_scalar_4x16(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    const MR: usize = 4;
    const NR: usize = 16;
    // SAFETY: the panels hold kc * MR and kc * NR values; the tile is MR x NR with stride ldc.
    let (ap, bp) = unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(b, kc * NR)) };
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..kc {
        let bv: &[f32; NR] = bp[p * NR..p * NR + NR].try_into().expect("NR values");
        for i in 0..MR {
            let ai = ap[p * MR + i];
            for j in 0..NR {
                acc[i][j] += ai * bv[j];
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row i of the MR x NR tile.
        let crow = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        for j in 0..NR {
            let v = alpha * row[j];
            crow[j] = if beta == 0.0 { v } else { v + beta * crow[j] };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[allow(clippy::too_many_arguments)]
    fn naive(ta: bool, tb: bool, m: usize, n: usize, k: usize, alpha: f32, a: &[f32], lda: usize, b: &[f32],
             ldb: usize, beta: f32, c: &[f32], ldc: usize) -> Vec<f64> {
        let mut out: Vec<f64> = c.iter().map(|&v| v as f64).collect();
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if ta { a[p * lda + i] } else { a[i * lda + p] } as f64;
                    let bv = if tb { b[j * ldb + p] } else { b[p * ldb + j] } as f64;
                    s += av * bv;
                }
                let old = if beta == 0.0 { 0.0 } else { beta as f64 * c[i * ldc + j] as f64 };
                out[i * ldc + j] = alpha as f64 * s + old;
            }
        }
        out
    }

    pub(crate) fn check_gemm(f: &dyn Fn(bool, bool, usize, usize, usize, f32, &[f32], usize, &[f32], usize, f32, &mut [f32], usize),
                             label: &str) {
        let mut seed = 42u64;
        let sizes = [(1, 1, 1), (3, 5, 7), (17, 33, 9), (29, 31, 37), (64, 64, 64), (100, 71, 300), (13, 130, 513), (200, 45, 3),
            // Tall enough for the shared-B split of every kernel at 2 threads, over several K and N blocks.
            (400, 70, 1030), (340, 4130, 9)];
        for &(m, n, k) in &sizes {
            for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
                for &(alpha, beta) in &[(1.0f32, 0.0f32), (0.5, 1.0), (-1.25, 0.75)] {
                    let pad = 3;
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let (lda, ldb, ldc) = (ac + pad, bc + pad + 1, n + pad + 2);
                    let a: Vec<f32> = (0..ar * lda).map(|_| lcg(&mut seed)).collect();
                    let b: Vec<f32> = (0..br * ldb).map(|_| lcg(&mut seed)).collect();
                    let mut c: Vec<f32> = (0..m * ldc).map(|_| lcg(&mut seed)).collect();
                    if beta == 0.0 {
                        // beta == 0 must ignore C, NaN included.
                        for i in 0..m {
                            for j in 0..n {
                                c[i * ldc + j] = f32::NAN;
                            }
                        }
                    }
                    let want = naive(ta, tb, m, n, k, alpha, &a, lda, &b, ldb, beta, &c, ldc);
                    let before = c.clone();
                    f(ta, tb, m, n, k, alpha, &a, lda, &b, ldb, beta, &mut c, ldc);
                    for i in 0..m {
                        for j in 0..ldc {
                            let idx = i * ldc + j;
                            if j >= n {
                                assert_eq!(c[idx].to_bits(), before[idx].to_bits(), "{label}: padding written");
                                continue;
                            }
                            let err = (c[idx] as f64 - want[idx]).abs();
                            let tol = 1e-5 * (k as f64 + 1.0) + 1e-5 * want[idx].abs();
                            assert!(err <= tol, "{label}: m{m} n{n} k{k} ta{ta} tb{tb} a{alpha} b{beta}: c[{i},{j}] = {} want {} (err {err})",
                                    c[idx], want[idx]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_kernel_matches_naive() {
        for kern in available_kernels() {
            for threads in [1usize, 2] {
                crate::parallel::set_threads(2);
                check_gemm(&|ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc| {
                    sgemm_with(kern, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc, threads)
                }, &format!("{kern:?} {threads}t"));
            }
        }
    }

    #[test]
    fn degenerate_sizes() {
        let mut c = vec![2.0f32; 6];
        sgemm(false, false, 2, 3, 0, 1.0, &[], 0, &[], 3, 0.5, &mut c, 3, 1);
        assert!(c.iter().all(|&v| v == 1.0));
        sgemm(false, false, 2, 3, 4, 0.0, &[0.0; 8], 4, &[0.0; 12], 3, 0.0, &mut c, 3, 1);
        assert!(c.iter().all(|&v| v == 0.0));
        sgemm(false, false, 0, 3, 4, 1.0, &[], 4, &[0.0; 12], 3, 0.0, &mut [], 3, 1);
    }
}
