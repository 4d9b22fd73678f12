//! 3x3 stride-1 convolution by Winograd F(2x2, 3x3) (the native twin of assembly/winograd.ts).
//!
//! Every 2x2 block of output pixels (a tile) of output channel o is
//!   Y = A^T [ sum_c (G g[o][c] G^T) .* (B^T d[c] B) ] A
//! with d[c] the 4x4 input patch of the tile in channel c (zero outside the image) and
//! g[o][c] the 3x3 filter: 16 multiplies per tile and channel pair instead of 36. For each
//! of the 16 positions xi of the transformed 4x4 tile, the sum over c is a GEMM
//!   M[xi] (outC x tiles) = U[xi] (outC x inC) * V[xi] (inC x tiles)
//! run by `crate::blas::sgemm`, so on whichever provider is loaded.
//!
//! - U (filter transform G g G^T): once per call, U[xi] row-major outC x inC; split over
//!   the pool by the row of xi (4 items: each computes one row of G g and its 4 outputs).
//! - Tiles are numbered (image, tile row, tile column) and processed in chunks whose size
//!   depends only on the shape (a workspace budget), never on the thread count: whole images
//!   when an image has few tiles, else runs of whole tile rows of one image. A chunk of n
//!   tiles holds V as [inC][16][n] (GEMM B operand of position xi at offset xi * n, row
//!   stride 16 * n) and M as [16][outC][n]; its output is the rows of its tiles in every
//!   output plane, handed to it as disjoint slices (no locks on the data path).
//! - Threads: with enough chunks to keep the pool evenly busy, whole chunks per task (input
//!   transform, 16 GEMMs, output transform on one thread, in that thread's workspace);
//!   otherwise one chunk at a time with the input transform split over input channels, the
//!   16 GEMMs over the pool, and the output transform over output channels. Every GEMM is
//!   a single-threaded call on the same operands either way, and the transforms compute
//!   each value by the same operations, so the result does not depend on the thread count.
//!
//! Backward data (stride 1, dilation 1, one group, pad p) is the same computation: the
//! input gradient is the correlation of the output gradient, padded by 2 - p (negative:
//! cropped), with W'[ci][co][ky][kx] = W[co][ci][2 - ky][2 - kx].
//!
//! Selection: `SQUALL_NATIVE_CONV=auto|im2col|winograd` (default auto), or
//! `set_conv_algorithm` (the module's setConvAlgorithm export). auto takes Winograd for
//! eligible layers with >= 8 input channels (of the GEMM: outC for backward data), >= 32
//! output tiles and output planes of at least 4x4 (`pays`).

use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::conv::balanced;
use super::par::{for_each_chunk, tasks_for, with_workspace};
use super::shapes::Conv2dShape;
use crate::blas::sgemm;
use crate::parallel::{parallel_for, threads};

// ---- the algorithm setting ----------------------------------------------------------------

/// Forward / backward-data convolution algorithm for eligible layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Winograd where it pays (`pays`), im2col elsewhere.
    Auto,
    /// Always im2col + GEMM.
    Im2col,
    /// Winograd wherever the shape allows it.
    Winograd,
}

impl ConvAlgorithm {
    pub const ALL: [ConvAlgorithm; 3] = [ConvAlgorithm::Auto, ConvAlgorithm::Im2col, ConvAlgorithm::Winograd];
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgorithm::Auto => "auto",
            ConvAlgorithm::Im2col => "im2col",
            ConvAlgorithm::Winograd => "winograd",
        }
    }
    pub fn parse(name: &str) -> Option<ConvAlgorithm> {
        let want = name.trim().to_ascii_lowercase();
        ConvAlgorithm::ALL.into_iter().find(|a| a.name() == want)
    }
    fn code(self) -> u8 {
        match self {
            ConvAlgorithm::Auto => 1,
            ConvAlgorithm::Im2col => 2,
            ConvAlgorithm::Winograd => 3,
        }
    }
    fn from_code(c: u8) -> Option<ConvAlgorithm> {
        ConvAlgorithm::ALL.into_iter().find(|a| a.code() == c)
    }
}

static ALGORITHM: AtomicU8 = AtomicU8::new(0);
static ENV_NOTE: OnceLock<Option<String>> = OnceLock::new();

/// SQUALL_NATIVE_CONV, or auto (with a note when the variable holds something else).
fn from_env() -> ConvAlgorithm {
    let v = std::env::var("SQUALL_NATIVE_CONV").unwrap_or_default();
    let parsed = if v.trim().is_empty() { Some(ConvAlgorithm::Auto) } else { ConvAlgorithm::parse(&v) };
    let _ = ENV_NOTE.set(match parsed {
        Some(_) => None,
        None => Some(format!("SQUALL_NATIVE_CONV='{v}' is not one of auto, im2col, winograd; using auto")),
    });
    parsed.unwrap_or(ConvAlgorithm::Auto)
}

/// The algorithm in use: `set_conv_algorithm`'s, else SQUALL_NATIVE_CONV's, else auto.
pub fn conv_algorithm() -> ConvAlgorithm {
    if let Some(a) = ConvAlgorithm::from_code(ALGORITHM.load(Ordering::Relaxed)) {
        return a;
    }
    let a = from_env();
    match ALGORITHM.compare_exchange(0, a.code(), Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => a,
        Err(cur) => ConvAlgorithm::from_code(cur).unwrap_or(a),
    }
}

/// Chooses the algorithm for later calls (a call already running keeps its choice).
pub fn set_conv_algorithm(a: ConvAlgorithm) {
    conv_algorithm(); // read the environment first, so its note is kept
    ALGORITHM.store(a.code(), Ordering::Relaxed);
}

/// A message when SQUALL_NATIVE_CONV held an unknown value.
pub fn env_note() -> Option<String> {
    conv_algorithm();
    ENV_NOTE.get().cloned().flatten()
}

// ---- eligibility ---------------------------------------------------------------------------

/// Largest transformed filter accepted, in floats (64 MiB, as assembly/winograd.ts).
const U_MAX: usize = 16 << 20;

/// The computation both directions reduce to: output [batch, cout, oh, ow] with
/// y[o](Y, X) = sum_c sum_{ky, kx} x[c](Y - pad_h + ky, X - pad_w + kx) * g[o][c](ky, kx),
/// x [batch, cin, ih, iw] read as zero outside the image.
#[derive(Clone, Copy, Debug)]
struct Problem {
    batch: usize,
    cin: usize,
    cout: usize,
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    pad_h: isize,
    pad_w: isize,
    /// g[o][c](ky, kx) = weight[c][o](2 - ky, 2 - kx) (backward data) instead of weight[o][c](ky, kx).
    flipped: bool,
}

impl Problem {
    fn forward(s: &Conv2dShape) -> Problem {
        Problem { batch: s.batch, cin: s.in_c, cout: s.out_c, ih: s.in_h, iw: s.in_w, oh: s.out_h(), ow: s.out_w(),
                  pad_h: s.pad_h as isize, pad_w: s.pad_w as isize, flipped: false }
    }
    fn backward_data(s: &Conv2dShape) -> Problem {
        Problem { batch: s.batch, cin: s.out_c, cout: s.in_c, ih: s.out_h(), iw: s.out_w(), oh: s.in_h, ow: s.in_w,
                  pad_h: 2 - s.pad_h as isize, pad_w: 2 - s.pad_w as isize, flipped: true }
    }
    /// Tile rows and columns per image.
    fn th(&self) -> usize {
        self.oh.div_ceil(2)
    }
    fn tw(&self) -> usize {
        self.ow.div_ceil(2)
    }
    fn tiles(&self) -> usize {
        self.batch * self.th() * self.tw()
    }
    fn u_len(&self) -> usize {
        16 * self.cout * self.cin
    }
}

/// The shapes F(2x2, 3x3) computes here: 3x3, stride 1, dilation 1, one group (any padding).
pub fn eligible(s: &Conv2dShape) -> bool {
    s.k_h == 3 && s.k_w == 3 && s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 && s.dilation_w == 1
        && s.groups == 1 && s.in_c.saturating_mul(s.out_c).saturating_mul(16) <= U_MAX
}

/// Where Winograd beats im2col + GEMM: with few input channels the transforms dominate,
/// with few tiles the filter transform. Planes below 4x4 are left to im2col: a 2x2 plane is
/// one tile per image whose 4x4 input patch is mostly padding, and the batched im2col path
/// (conv_batched.rs) ran VGG-32's 2x2 512-channel layers 1.5-1.8x faster (forward and
/// backward data, 2 threads, measured side by side in one process); 4x4 planes still gained.
/// Independent of the thread count, so a layer's result does not depend on it.
fn pays(p: &Problem) -> bool {
    p.cin >= 8 && p.tiles() >= 32 && p.oh >= 4 && p.ow >= 4
}

fn chosen(s: &Conv2dShape, p: &Problem) -> bool {
    eligible(s)
        && match conv_algorithm() {
            ConvAlgorithm::Auto => pays(p),
            ConvAlgorithm::Im2col => false,
            ConvAlgorithm::Winograd => true,
        }
}

/// Whether conv2d_forward takes this path for `s` under the current setting.
pub fn use_forward(s: &Conv2dShape) -> bool {
    chosen(s, &Problem::forward(s))
}

/// Whether conv2d_backward_data takes this path for `s` under the current setting.
pub fn use_backward_data(s: &Conv2dShape) -> bool {
    chosen(s, &Problem::backward_data(s))
}

// ---- entry points ------------------------------------------------------------------------

/// output = conv(input, weight) + bias (overwrites output); `s` must be `eligible`.
pub fn forward(s: &Conv2dShape, input: &[f32], weight: &[f32], bias: Option<&[f32]>, output: &mut [f32]) {
    debug_assert!(eligible(s) && s.validate().is_ok());
    debug_assert_eq!(input.len(), s.input_len());
    debug_assert_eq!(weight.len(), s.weight_len());
    debug_assert_eq!(output.len(), s.output_len());
    run(&Problem::forward(s), input, weight, bias, output);
}

/// grad_input = conv_transpose(grad_output, weight) (overwrites grad_input); `s` must be `eligible`.
pub fn backward_data(s: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    debug_assert!(eligible(s) && s.validate().is_ok());
    debug_assert_eq!(grad_output.len(), s.output_len());
    debug_assert_eq!(weight.len(), s.weight_len());
    debug_assert_eq!(grad_input.len(), s.input_len());
    run(&Problem::backward_data(s), grad_output, weight, None, grad_input);
}

// ---- chunks of tiles -----------------------------------------------------------------------

/// V + M of one chunk, in floats (4 MiB).
const CHUNK_FLOATS: usize = 1 << 20;
/// Fewest tiles a chunk aims for (narrower GEMMs lose efficiency), whatever the budget.
const MIN_CHUNK_TILES: usize = 64;

/// How the tiles are cut into chunks: `ipc` whole images per chunk, or (ipc == 1) runs of
/// `rpc` tile rows of one image, `cpi` chunks per image.
#[derive(Clone, Copy, Debug)]
struct Chunks {
    th: usize,
    tw: usize,
    ipc: usize,
    rpc: usize,
    cpi: usize,
    count: usize,
}

/// The tiles of one chunk: images [n0, n1), tile rows [ty0, ty1) of each, all tile columns.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    n0: usize,
    n1: usize,
    ty0: usize,
    ty1: usize,
}

impl Chunk {
    fn images(&self) -> usize {
        self.n1 - self.n0
    }
    fn rows(&self) -> usize {
        self.ty1 - self.ty0
    }
}

impl Chunks {
    fn new(p: &Problem) -> Chunks {
        let (th, tw) = (p.th(), p.tw());
        let tpi = th * tw;
        let target = (CHUNK_FLOATS / (16 * (p.cin + p.cout))).max(MIN_CHUNK_TILES);
        if tpi <= target {
            let ipc = (target / tpi).clamp(1, p.batch);
            Chunks { th, tw, ipc, rpc: th, cpi: 1, count: p.batch.div_ceil(ipc) }
        } else {
            let rpc = (target / tw).clamp(1, th);
            let cpi = th.div_ceil(rpc);
            Chunks { th, tw, ipc: 1, rpc, cpi, count: p.batch * cpi }
        }
    }
    fn chunk(&self, ci: usize, batch: usize) -> Chunk {
        if self.cpi == 1 {
            let n0 = ci * self.ipc;
            Chunk { n0, n1: (n0 + self.ipc).min(batch), ty0: 0, ty1: self.th }
        } else {
            let (n, r) = (ci / self.cpi, ci % self.cpi);
            let ty0 = r * self.rpc;
            Chunk { n0: n, n1: n + 1, ty0, ty1: (ty0 + self.rpc).min(self.th) }
        }
    }
    /// Most tiles in one chunk.
    fn max_tiles(&self) -> usize {
        self.ipc * self.rpc * self.tw
    }
    /// Scratch of one transform call (row buffers and horizontal sums of a tile row).
    fn scratch_len(&self) -> usize {
        4 * (2 * self.tw + 2) + 16 * self.tw
    }
    /// Workspace of one chunk: V, M and the scratch.
    fn workspace_len(&self, p: &Problem) -> usize {
        16 * (p.cin + p.cout) * self.max_tiles() + self.scratch_len()
    }
}

/// The output of every chunk as disjoint slices: for chunk ci, entry o * images + i holds
/// the rows of its tiles in the plane of output channel o of its i-th image.
fn output_pieces<'a>(p: &Problem, ch: &Chunks, output: &'a mut [f32]) -> Vec<Vec<&'a mut [f32]>> {
    let ohw = p.oh * p.ow;
    let mut slots: Vec<Vec<Option<&'a mut [f32]>>> = (0..ch.count)
        .map(|ci| (0..p.cout * ch.chunk(ci, p.batch).images()).map(|_| None).collect())
        .collect();
    for (plane_idx, plane) in output.chunks_exact_mut(ohw).enumerate() {
        let (n, o) = (plane_idx / p.cout, plane_idx % p.cout);
        if ch.cpi == 1 {
            let (ci, i) = (n / ch.ipc, n % ch.ipc);
            let images = ch.chunk(ci, p.batch).images();
            slots[ci][o * images + i] = Some(plane);
        } else {
            // Chunk r of this image covers output rows [2 r rpc, 2 (r + 1) rpc).
            for (r, rows) in plane.chunks_mut(2 * ch.rpc * p.ow).enumerate() {
                slots[n * ch.cpi + r][o] = Some(rows);
            }
        }
    }
    slots.into_iter().map(|v| v.into_iter().map(|s| s.expect("every output piece is assigned")).collect()).collect()
}

// ---- the driver ---------------------------------------------------------------------------

/// Largest transformed filter kept between calls, in floats (16 MiB: VGG's 512 x 512 layers).
const FILTER_KEEP: usize = 4 << 20;

thread_local! {
    /// The transformed filter of the current call on this thread, kept between calls up to
    /// FILTER_KEEP (separate from `par::with_workspace`'s buffer, which the chunks use meanwhile).
    static FILTER: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

fn with_filter_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = FILTER.with(|c| c.take());
    if v.len() < len {
        v.resize(len, 0.0);
    }
    let r = f(&mut v[..len]);
    if v.len() <= FILTER_KEEP {
        FILTER.with(|c| {
            let other = c.take();
            c.set(if other.len() > v.len() { other } else { v });
        });
    }
    r
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked; the pool re-raises that panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(p: &Problem, input: &[f32], weight: &[f32], bias: Option<&[f32]>, output: &mut [f32]) {
    let t = threads().max(1);
    let ch = Chunks::new(p);
    let ws_len = ch.workspace_len(p);
    with_filter_buffer(p.u_len(), |u| {
        filter_transform(p, weight, u);
        let u = &*u;
        let pieces = output_pieces(p, &ch, output);
        if t > 1 && balanced(ch.count, t) {
            let slots: Vec<Mutex<Vec<&mut [f32]>>> = pieces.into_iter().map(Mutex::new).collect();
            parallel_for(ch.count, |ci| {
                let mut out = lock(&slots[ci]);
                with_workspace(ws_len, |ws| run_chunk(p, &ch, ci, input, u, bias, &mut out, ws, 1));
            });
        } else {
            with_workspace(ws_len, |ws| {
                for (ci, mut out) in pieces.into_iter().enumerate() {
                    run_chunk(p, &ch, ci, input, u, bias, &mut out, ws, t);
                }
            });
        }
    });
}

/// Runs `f(items, part, scratch)` over `data` cut into `item`-sized items: on this thread
/// with `scratch` when tasks == 1, else split over the pool with per-thread scratch.
fn split<T, F>(data: &mut [T], item: usize, tasks: usize, scratch: &mut [f32], f: F)
where
    T: Send,
    F: Fn(Range<usize>, &mut [T], &mut [f32]) + Sync,
{
    if tasks <= 1 {
        f(0..data.len() / item, data, scratch);
    } else {
        let len = scratch.len();
        for_each_chunk(data, item, tasks, |items, part| with_workspace(len, |s| f(items, part, s)));
    }
}

/// Input transform, 16 GEMMs and output transform of chunk ci. `t` > 1 splits each step
/// over the pool; every GEMM is single-threaded either way.
#[allow(clippy::too_many_arguments)]
fn run_chunk(p: &Problem, ch: &Chunks, ci: usize, input: &[f32], u: &[f32], bias: Option<&[f32]>,
             out: &mut [&mut [f32]], ws: &mut [f32], t: usize) {
    let c = ch.chunk(ci, p.batch);
    let n = c.images() * c.rows() * ch.tw;
    let (v, rest) = ws.split_at_mut(16 * p.cin * n);
    let (m, rest) = rest.split_at_mut(16 * p.cout * n);
    let scratch = &mut rest[..ch.scratch_len()];

    let tasks = if t > 1 { tasks_for(p.cin, v.len()) } else { 1 };
    split(v, 16 * n, tasks, scratch, |chans, vpart, s| input_transform(p, ch, &c, input, chans, vpart, n, s));

    let v = &*v;
    let uxi = p.cout * p.cin;
    let tasks = if t > 1 { t.min(16) } else { 1 };
    split(m, p.cout * n, tasks, &mut [], |xis, mpart, _| {
        for (k, xi) in xis.enumerate() {
            // M[xi] = U[xi] * V[:, xi, :]: V's rows (input channels) are 16 * n apart.
            sgemm(false, false, p.cout, n, p.cin, 1.0, &u[xi * uxi..(xi + 1) * uxi], p.cin, &v[xi * n..], 16 * n, 0.0,
                  &mut mpart[k * p.cout * n..(k + 1) * p.cout * n], n);
        }
    });

    let m = &*m;
    let tasks = if t > 1 { tasks_for(p.cout, m.len()) } else { 1 };
    split(out, c.images(), tasks, scratch, |os, opart, _| output_transform(p, ch, &c, m, n, os, opart, bias));
}

// ---- the transforms -------------------------------------------------------------------------

/// U[xi][o][c] = (G g[o][c] G^T)[xi], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]. Split by the
/// row a of xi = 4a + b: each item computes row a of G g (3 values) and its 4 outputs.
fn filter_transform(p: &Problem, weight: &[f32], u: &mut [f32]) {
    let (cin, cout) = (p.cin, p.cout);
    let plane = cout * cin;
    let tasks = tasks_for(4, u.len());
    for_each_chunk(u, 4 * plane, tasks, |rows, part| {
        for (k, a) in rows.enumerate() {
            let (u0, rest) = part[k * 4 * plane..(k + 1) * 4 * plane].split_at_mut(plane);
            let (u1, rest) = rest.split_at_mut(plane);
            let (u2, u3) = rest.split_at_mut(plane);
            for o in 0..cout {
                let (r0, r1, r2, r3) = (&mut u0[o * cin..(o + 1) * cin], &mut u1[o * cin..(o + 1) * cin],
                                        &mut u2[o * cin..(o + 1) * cin], &mut u3[o * cin..(o + 1) * cin]);
                for c in 0..cin {
                    // g(ky, kx) of filter (o, c).
                    let g = |ky: usize, kx: usize| {
                        if p.flipped {
                            weight[(c * cout + o) * 9 + (2 - ky) * 3 + (2 - kx)]
                        } else {
                            weight[(o * cin + c) * 9 + ky * 3 + kx]
                        }
                    };
                    // Row a of G g.
                    let row = |j: usize| match a {
                        0 => g(0, j),
                        1 => 0.5 * (g(0, j) + g(1, j) + g(2, j)),
                        2 => 0.5 * (g(0, j) - g(1, j) + g(2, j)),
                        _ => g(2, j),
                    };
                    let (x0, x1, x2) = (row(0), row(1), row(2));
                    // Times G^T.
                    r0[c] = x0;
                    r1[c] = 0.5 * (x0 + x1 + x2);
                    r2[c] = 0.5 * (x0 - x1 + x2);
                    r3[c] = x2;
                }
            }
        }
    });
}

/// V[c][xi][j] = (B^T d B)[xi] for the tiles j of chunk `c` and the input channels `chans`
/// (v holds chans.len() * 16 * n values), B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
/// One tile row at a time: its 4 input rows (zero-padded) into row buffers, the row
/// transform over each, then the column transform.
#[allow(clippy::too_many_arguments)]
fn input_transform(p: &Problem, ch: &Chunks, c: &Chunk, input: &[f32], chans: Range<usize>, v: &mut [f32], n: usize,
                   scratch: &mut [f32]) {
    let tw = ch.tw;
    let rl = 2 * tw + 2;
    let (bufs, hs) = scratch.split_at_mut(4 * rl);
    let hs = &mut hs[..16 * tw];
    let ihw = p.ih * p.iw;
    // Columns k of a row buffer read input column k - pad_w: inside for k in [klo, khi).
    let klo = p.pad_w.clamp(0, rl as isize) as usize;
    let khi = (p.iw as isize + p.pad_w).clamp(klo as isize, rl as isize) as usize;
    for (cl, ch_idx) in chans.enumerate() {
        let vc = &mut v[cl * 16 * n..(cl + 1) * 16 * n];
        for img in c.n0..c.n1 {
            let plane = &input[(img * p.cin + ch_idx) * ihw..(img * p.cin + ch_idx + 1) * ihw];
            for ty in c.ty0..c.ty1 {
                let j0 = ((img - c.n0) * c.rows() + (ty - c.ty0)) * tw;
                // Row buffers and the row transform h[r][col][tx].
                for r in 0..4 {
                    let buf = &mut bufs[r * rl..(r + 1) * rl];
                    let iy = (2 * ty + r) as isize - p.pad_h;
                    if iy < 0 || iy >= p.ih as isize || klo >= khi {
                        buf.fill(0.0);
                    } else {
                        let row = &plane[iy as usize * p.iw..(iy as usize + 1) * p.iw];
                        buf[..klo].fill(0.0);
                        let x0 = (klo as isize - p.pad_w) as usize;
                        buf[klo..khi].copy_from_slice(&row[x0..x0 + (khi - klo)]);
                        buf[khi..].fill(0.0);
                    }
                    let h = &mut hs[r * 4 * tw..(r + 1) * 4 * tw];
                    let (h0, rest) = h.split_at_mut(tw);
                    let (h1, rest) = rest.split_at_mut(tw);
                    let (h2, h3) = rest.split_at_mut(tw);
                    for tx in 0..tw {
                        let d = &buf[2 * tx..2 * tx + 4];
                        h0[tx] = d[0] - d[2];
                        h1[tx] = d[1] + d[2];
                        h2[tx] = d[2] - d[1];
                        h3[tx] = d[1] - d[3];
                    }
                }
                // Column transform: V[4a + col] from h[0..4][col].
                for col in 0..4 {
                    let hr = |r: usize| &hs[(r * 4 + col) * tw..(r * 4 + col + 1) * tw];
                    let (g0, g1, g2, g3) = (hr(0), hr(1), hr(2), hr(3));
                    let dst = |a: usize| (a * 4 + col) * n + j0;
                    for (tx, o) in vc[dst(0)..dst(0) + tw].iter_mut().enumerate() {
                        *o = g0[tx] - g2[tx];
                    }
                    for (tx, o) in vc[dst(1)..dst(1) + tw].iter_mut().enumerate() {
                        *o = g1[tx] + g2[tx];
                    }
                    for (tx, o) in vc[dst(2)..dst(2) + tw].iter_mut().enumerate() {
                        *o = g2[tx] - g1[tx];
                    }
                    for (tx, o) in vc[dst(3)..dst(3) + tw].iter_mut().enumerate() {
                        *o = g1[tx] - g3[tx];
                    }
                }
            }
        }
    }
}

/// Output channels `os` of chunk `c`: Y = A^T M A + bias, A^T = [1 1 1 0; 0 1 -1 -1], into
/// `out` (entry (o - os.start) * images + i: the chunk's rows of plane o of its image i);
/// tiles at the right and bottom edges of odd-sized outputs write their inside pixels only.
#[allow(clippy::too_many_arguments)]
fn output_transform(p: &Problem, ch: &Chunks, c: &Chunk, m: &[f32], n: usize, os: Range<usize>,
                    out: &mut [&mut [f32]], bias: Option<&[f32]>) {
    let (tw, ow) = (ch.tw, p.ow);
    let mxi = p.cout * n;
    let full = ow / 2; // tiles whose 2 columns are both inside
    for (ol, o) in os.enumerate() {
        let b = bias.map_or(0.0, |b| b[o]);
        for i in 0..c.images() {
            let piece = &mut *out[ol * c.images() + i];
            for ty in c.ty0..c.ty1 {
                let j0 = (i * c.rows() + (ty - c.ty0)) * tw;
                let mm = |xi: usize| &m[xi * mxi + o * n + j0..xi * mxi + o * n + j0 + tw];
                let ms: [&[f32]; 16] = std::array::from_fn(mm);
                let y0 = 2 * (ty - c.ty0) * ow;
                let two_rows = 2 * ty + 1 < p.oh;
                let (row0, row1) = piece[y0..].split_at_mut(ow);
                let row1 = if two_rows { &mut row1[..ow] } else { &mut row1[..0] };
                for tx in 0..tw {
                    // Columns of A^T m: s0k = m0k + m1k + m2k, s1k = m1k - m2k - m3k.
                    let s0 = |k: usize| ms[k][tx] + ms[4 + k][tx] + ms[8 + k][tx];
                    let s1 = |k: usize| ms[4 + k][tx] - ms[8 + k][tx] - ms[12 + k][tx];
                    let (a0, a1, a2, a3) = (s0(0), s0(1), s0(2), s0(3));
                    let y00 = a0 + a1 + a2 + b;
                    let y01 = a1 - a2 - a3 + b;
                    row0[2 * tx] = y00;
                    if tx < full {
                        row0[2 * tx + 1] = y01;
                    }
                    if two_rows {
                        let (c0, c1, c2, c3) = (s1(0), s1(1), s1(2), s1(3));
                        row1[2 * tx] = c0 + c1 + c2 + b;
                        if tx < full {
                            row1[2 * tx + 1] = c1 - c2 - c3 + b;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{rel_err, Rng};

    #[allow(clippy::too_many_arguments)]
    fn shape(batch: usize, in_c: usize, in_h: usize, in_w: usize, out_c: usize, pad_h: usize, pad_w: usize) -> Conv2dShape {
        Conv2dShape { batch, in_c, in_h, in_w, out_c, k_h: 3, k_w: 3, stride_h: 1, stride_w: 1, pad_h, pad_w,
                      dilation_h: 1, dilation_w: 1, groups: 1 }
    }

    /// f64 direct convolution: (values, sum of |terms| per value) for forward (with bias) and
    /// backward data.
    fn reference(s: &Conv2dShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, go: &[f32]) -> [(Vec<f64>, Vec<f64>); 2] {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut y = vec![0.0f64; s.output_len()];
        let mut ya = vec![0.0f64; s.output_len()];
        let mut gi = vec![0.0f64; s.input_len()];
        let mut gia = vec![0.0f64; s.input_len()];
        for n in 0..s.batch {
            for co in 0..s.out_c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let oi = ((n * s.out_c + co) * oh + oy) * ow + ox;
                        let b = bias.map_or(0.0, |b| b[co] as f64);
                        let (mut acc, mut abs) = (b, b.abs());
                        for ci in 0..s.in_c {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (oy + ky) as isize - s.pad_h as isize;
                                    let ix = (ox + kx) as isize - s.pad_w as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= s.in_h || ix as usize >= s.in_w {
                                        continue;
                                    }
                                    let xi = ((n * s.in_c + ci) * s.in_h + iy as usize) * s.in_w + ix as usize;
                                    let wv = w[((co * s.in_c + ci) * 3 + ky) * 3 + kx] as f64;
                                    acc += x[xi] as f64 * wv;
                                    abs += (x[xi] as f64 * wv).abs();
                                    gi[xi] += go[oi] as f64 * wv;
                                    gia[xi] += (go[oi] as f64 * wv).abs();
                                }
                            }
                        }
                        y[oi] = acc;
                        ya[oi] = abs;
                    }
                }
            }
        }
        [(y, ya), (gi, gia)]
    }

    /// max_i |got_i - want_i| / sum of |terms| of value i.
    fn err_vs_terms(got: &[f32], want: &[f64], terms: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        got.iter().zip(want).zip(terms).map(|((&g, &w), &a)| {
            assert!(g.is_finite(), "non-finite result {g}");
            (g as f64 - w).abs() / a.max(1e-30)
        }).fold(0.0, f64::max)
    }

    /// Bound relative to the sum of |products| (the wasm tests' bound, 1e-4, is relative to the
    /// largest |value| and is checked too).
    const TOL_TERMS: f64 = 1e-5;
    const TOL_MAX: f64 = 1e-4;

    struct Worst {
        terms: f64,
        max: f64,
    }

    fn check_one(s: &Conv2dShape, rng: &mut Rng, worst: &mut Worst, bwd: bool) {
        assert!(s.validate().is_ok() && eligible(s), "{s:?}");
        let x = rng.vec(s.input_len(), -1.0, 1.0);
        let w = rng.vec(s.weight_len(), -1.0, 1.0);
        let b = rng.vec(s.out_c, -1.0, 1.0);
        let go = rng.vec(s.output_len(), -1.0, 1.0);
        for with_bias in [true, false] {
            let bias = if with_bias { Some(&b[..]) } else { None };
            let [(y, ya), (gi, gia)] = reference(s, &x, &w, bias, &go);
            let mut by_threads: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
            for t in [1usize, 2] {
                crate::parallel::set_threads(t);
                let mut got = vec![f32::NAN; s.output_len()];
                forward(s, &x, &w, bias, &mut got);
                let (et, em) = (err_vs_terms(&got, &y, &ya), rel_err(&got, &y));
                assert!(et <= TOL_TERMS && em <= TOL_MAX, "forward {s:?} bias {with_bias} {t}t: {et:e} / {em:e}");
                worst.terms = worst.terms.max(et);
                worst.max = worst.max.max(em);
                let mut gin = vec![f32::NAN; s.input_len()];
                if bwd && !with_bias {
                    backward_data(s, &go, &w, &mut gin);
                    let (et, em) = (err_vs_terms(&gin, &gi, &gia), rel_err(&gin, &gi));
                    assert!(et <= TOL_TERMS && em <= TOL_MAX, "backward data {s:?} {t}t: {et:e} / {em:e}");
                    worst.terms = worst.terms.max(et);
                    worst.max = worst.max.max(em);
                }
                by_threads.push((got, gin));
            }
            let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same(&by_threads[0].0, &by_threads[1].0), "forward {s:?}: 1 and 2 threads differ");
            assert!(same(&by_threads[0].1, &by_threads[1].1), "backward data {s:?}: 1 and 2 threads differ");
        }
    }

    /// Forward and backward data against the f64 reference over odd and even sizes, pad 0
    /// and 1 (and 2, unequal per axis), inC 8..64, outC 1..70, batch 1 and 3, with and
    /// without bias, on 1 and 2 threads (bit-identical).
    #[test]
    fn grid_against_reference() {
        let t0 = threads();
        let mut rng = Rng::new(77);
        let mut worst = Worst { terms: 0.0, max: 0.0 };
        let sizes = [(5usize, 5usize), (6, 7), (8, 8), (13, 11), (32, 32)];
        let chans = [(8usize, 1usize), (9, 70), (16, 13), (24, 5), (64, 37), (33, 64), (12, 3)];
        let mut k = 0;
        for &(h, w) in &sizes {
            for pad in [0usize, 1] {
                for batch in [1usize, 3] {
                    let (cin, cout) = chans[k % chans.len()];
                    k += 1;
                    check_one(&shape(batch, cin, h, w, cout, pad, pad), &mut rng, &mut worst, true);
                }
            }
        }
        // Padding 2 and unequal padding per axis; 3x3 inputs (one output tile); tiny images
        // with padding 1 (1x1 and 1x2 outputs of which most of the patch is padding); padding
        // 3 (backward data crops the output gradient: padding -1).
        for s in [shape(2, 8, 7, 6, 11, 2, 0), shape(1, 10, 9, 12, 6, 0, 1), shape(3, 8, 3, 3, 9, 0, 0),
                  shape(2, 8, 1, 2, 5, 1, 1), shape(1, 8, 4, 3, 8, 2, 2), shape(1, 8, 5, 6, 9, 3, 3)] {
            check_one(&s, &mut rng, &mut worst, true);
        }
        crate::parallel::set_threads(t0);
        println!("worst error: {:.2e} of the sum of |terms|, {:.2e} of the largest |value|", worst.terms, worst.max);
    }

    /// Several chunks of each kind (whole images, with a short last chunk; rows of one image,
    /// with a short last chunk) and both threading modes (whole chunks per task when the
    /// chunks fill 2 threads evenly; else one chunk at a time split over the pool).
    #[test]
    fn chunking_and_threading_modes() {
        let t0 = threads();
        let mut rng = Rng::new(78);
        let mut worst = Worst { terms: 0.0, max: 0.0 };
        // 64 + 64 channels: 512 tiles per chunk.
        let cases = [
            // 16 tiles per image, 32 images per chunk: 2 chunks (one per task).
            (shape(64, 64, 8, 8, 64, 1, 1), 32usize, 1usize, 2usize),
            // 3 chunks, the last of 6 images (not balanced on 2 threads: one chunk at a time).
            (shape(70, 64, 8, 8, 64, 1, 1), 32, 1, 3),
            // 70x61 output: 35 x 31 tiles per image, 16 tile rows per chunk: 3 chunks per image, 6 in all.
            (shape(2, 64, 70, 61, 64, 1, 1), 1, 3, 6),
            // One chunk: split over the pool.
            (shape(1, 32, 10, 9, 20, 1, 1), 1, 1, 1),
        ];
        for (s, ipc, cpi, count) in cases {
            let ch = Chunks::new(&Problem::forward(&s));
            assert_eq!((ch.ipc, ch.cpi, ch.count), (ipc, cpi, count), "{s:?}: {ch:?}");
            check_one(&s, &mut rng, &mut worst, true);
        }
        crate::parallel::set_threads(t0);
        println!("worst error: {:.2e} of the sum of |terms|, {:.2e} of the largest |value|", worst.terms, worst.max);
    }

    /// Output pieces cover the output exactly once, in the documented order.
    #[test]
    fn pieces_cover_output() {
        for s in [shape(5, 64, 8, 9, 7, 1, 1), shape(2, 64, 70, 61, 3, 1, 1), shape(1, 8, 5, 5, 2, 0, 0)] {
            let p = Problem::forward(&s);
            let ch = Chunks::new(&p);
            let mut out = vec![0.0f32; s.output_len()];
            let (oh, ow) = (p.oh, p.ow);
            {
                let pieces = output_pieces(&p, &ch, &mut out);
                for (ci, mut v) in pieces.into_iter().enumerate() {
                    let c = ch.chunk(ci, p.batch);
                    assert_eq!(v.len(), p.cout * c.images());
                    for (k, piece) in v.iter_mut().enumerate() {
                        let (o, i) = (k / c.images(), k % c.images());
                        let rows = (2 * c.ty1).min(oh) - 2 * c.ty0;
                        assert_eq!(piece.len(), rows * ow);
                        for (e, val) in piece.iter_mut().enumerate() {
                            *val += (((c.n0 + i) * p.cout + o) * oh * ow + 2 * c.ty0 * ow + e) as f32;
                        }
                    }
                }
            }
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32), "{s:?}");
        }
    }

    #[test]
    fn algorithm_setting_and_dispatch() {
        assert_eq!(ConvAlgorithm::parse(" Winograd "), Some(ConvAlgorithm::Winograd));
        assert_eq!(ConvAlgorithm::parse("fft"), None);
        let before = conv_algorithm();
        let big = shape(2, 16, 12, 12, 16, 1, 1); // 72 tiles, 16 input channels
        let few_channels = shape(2, 4, 12, 12, 16, 1, 1);
        let few_tiles = shape(1, 16, 6, 6, 16, 1, 1); // 9 tiles
        let small_planes = shape(40, 16, 2, 2, 16, 1, 1); // 40 tiles, 2x2 planes
        let strided = Conv2dShape { stride_h: 2, ..big };
        let grouped = Conv2dShape { groups: 2, ..big };
        set_conv_algorithm(ConvAlgorithm::Auto);
        assert!(use_forward(&big) && use_backward_data(&big));
        assert!(!use_forward(&few_channels) && use_backward_data(&few_channels)); // backward: 16 GEMM input channels
        assert!(!use_forward(&few_tiles) && !use_forward(&strided) && !use_forward(&grouped));
        assert!(!use_forward(&small_planes) && !use_backward_data(&small_planes));
        set_conv_algorithm(ConvAlgorithm::Winograd);
        assert!(use_forward(&few_channels) && use_forward(&few_tiles) && !use_forward(&strided) && !use_forward(&grouped));
        set_conv_algorithm(ConvAlgorithm::Im2col);
        assert!(!use_forward(&big) && !use_backward_data(&big));
        set_conv_algorithm(before);
    }

    /// One VGG-like layer, im2col vs Winograd (forward, backward data), at the current thread count.
    /// `cargo test --release winograd_vs_im2col_rate -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn winograd_vs_im2col_rate() {
        use crate::kernels::conv;
        use std::time::Instant;
        let provider = crate::blas::ensure_selected().expect("no BLAS provider");
        println!("BLAS: {}, threads {}", crate::blas::describe(provider), threads());
        let s = shape(32, 256, 8, 8, 256, 1, 1);
        let mut rng = Rng::new(5);
        let x = rng.vec(s.input_len(), -1.0, 1.0);
        let w = rng.vec(s.weight_len(), -1.0, 1.0);
        let b = rng.vec(s.out_c, -1.0, 1.0);
        let mut y = vec![0.0; s.output_len()];
        let mut gi = vec![0.0; s.input_len()];
        let flops = 2.0 * (s.batch * s.out_c * s.in_c * 9 * s.out_h() * s.out_w()) as f64;
        let mut best = [f64::MAX; 4];
        for rep in 0..4 {
            for (i, algo) in [ConvAlgorithm::Im2col, ConvAlgorithm::Winograd].into_iter().enumerate() {
                set_conv_algorithm(algo);
                let t0 = Instant::now();
                conv::conv2d_forward(&s, &x, &w, Some(&b), &mut y);
                let t1 = Instant::now();
                conv::conv2d_backward_data(&s, &y, &w, &mut gi);
                if rep > 0 {
                    best[2 * i] = best[2 * i].min((t1 - t0).as_secs_f64());
                    best[2 * i + 1] = best[2 * i + 1].min(t1.elapsed().as_secs_f64());
                }
            }
        }
        set_conv_algorithm(ConvAlgorithm::Auto);
        println!("{s:?}\nforward: im2col {:.2} ms ({:.1} GFLOP/s), winograd {:.2} ms ({:.1} direct-GFLOP/s)\n\
                  backward data: im2col {:.2} ms, winograd {:.2} ms",
                 best[0] * 1e3, flops / best[0] * 1e-9, best[2] * 1e3, flops / best[2] * 1e-9, best[1] * 1e3, best[3] * 1e3);
    }
}
