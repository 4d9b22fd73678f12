//! sgemm GFLOP/s: cargo run --release --example gemm -- [n] [threads] [provider|kernel...]
use squall_native::{blas, parallel};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let which: Vec<String> = if args.len() > 3 { args[3..].to_vec() } else { vec!["builtin".into()] };
    parallel::set_threads(threads);
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
    let mut c = vec![0.0f32; n * n];
    for w in &which {
        let run = |c: &mut [f32]| {
            if let Some(p) = blas::Provider::parse(w) {
                if p == blas::Provider::Builtin && threads == 1 {
                    let k = blas::builtin::kernel();
                    blas::builtin::sgemm_with(k, false, false, n, n, n, 1.0, &a, n, &b, n, 0.0, c, n, 1);
                    return;
                }
                blas::sgemm_on(p, false, false, n, n, n, 1.0, &a, n, &b, n, 0.0, c, n);
            } else {
                let k = blas::builtin::available_kernels().into_iter().find(|k| k.name == w).expect("kernel");
                blas::builtin::sgemm_with(k, false, false, n, n, n, 1.0, &a, n, &b, n, 0.0, c, n, threads);
            }
        };
        if let Some(p) = blas::Provider::parse(w) {
            if let Err(e) = blas::load(p) { println!("{w}: {e}"); continue; }
        }
        run(&mut c);
        let reps = (20e9 / (2.0 * (n * n * n) as f64)).ceil().max(3.0) as usize;
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let t0 = Instant::now();
            run(&mut c);
            best = best.min(t0.elapsed().as_secs_f64());
        }
        let desc = blas::Provider::parse(w).map(blas::describe).unwrap_or_else(|| w.clone());
        println!("{n}^3 {threads}t {desc}: {:.1} GFLOP/s (best of {reps})", 2.0 * (n * n * n) as f64 / best / 1e9);
    }
}
