// Node glue for the wasm backend: finds build/wasm, picks the build the runtime accepts
// (relaxed SIMD when WebAssembly.validate accepts it, e.g. under
// --experimental-wasm-relaxed-simd; plain SIMD otherwise), and spawns worker_threads.
// Everything else is in core.ts, which uses no Node-only API.
//
// Environment:
//   SQUALL_WASM_DIR       directory holding squall*.wasm (default: build/wasm of this package)
//   SQUALL_WASM_SIMD      relaxed | plain | auto (default auto). relaxed on a runtime that
//                         keeps relaxed SIMD behind a flag (Node 20) turns the flag on
//                         (relaxed-simd.ts); auto uses relaxed SIMD only if already accepted
//   SQUALL_WASM_THREADS   initial thread count (default: SQUALL_THREADS, else min(2, cores))
//   SQUALL_WASM_GUARD=1   canaries around every region, checked after every kernel
//   SQUALL_WASM_CONV      auto | im2col | winograd: the forward convolution algorithm (default auto)
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  createWasmBackend, MAX_THREADS, type ConvAlgorithm, type ThreadSpawner, type WasmBackend, type WorkerHandle, type WorkerInit,
} from './core.js';

import { enableRelaxedSimd } from './relaxed-simd.js';

export { WasmBackend, type ConvAlgorithm } from './core.js';
export { enableRelaxedSimd, relaxedSimdAccepted } from './relaxed-simd.js';

export interface LoadWasmOptions {
  /** relaxed | plain | auto (default: SQUALL_WASM_SIMD, else auto). */
  simd?: 'relaxed' | 'plain' | 'auto';
  threads?: number;
  guard?: boolean;
  /** Forward convolution algorithm (default: SQUALL_WASM_CONV, else auto). */
  convAlgorithm?: ConvAlgorithm;
  /** Directory with the .wasm files. */
  dir?: string;
}

/** build/wasm of this package: searched upwards from this file (works from dist/ and from the sources). */
export function wasmBuildDir(): string {
  if (process.env.SQUALL_WASM_DIR) return resolve(process.env.SQUALL_WASM_DIR);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'assembly'))) return join(dir, 'build/wasm');
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../../build/wasm');
}

/**
 * Workers start with an empty execArgv: a wasm worker runs plain compiled JavaScript, and
 * inheriting the parent's module hooks (--import, --loader: test runners, transpilers) made
 * each worker start 30x slower. V8 flags (--experimental-wasm-relaxed-simd) are process-wide
 * and need not (and may not) be repeated for a worker.
 */
class NodeSpawner implements ThreadSpawner {
  constructor(private readonly script: URL) {}
  spawn(init: WorkerInit): WorkerHandle {
    const worker = new Worker(this.script, { workerData: init, execArgv: [], name: `squall-wasm-${init.slot + 1}` });
    // A worker that fails to start reports FAILED through the control block; keep Node
    // from treating its error as uncaught.
    worker.on('error', () => undefined);
    return {
      ref: () => worker.ref(),
      unref: () => worker.unref(),
      terminate: () => void worker.terminate(),
    };
  }
}

function envThreads(): number | undefined {
  for (const name of ['SQUALL_WASM_THREADS', 'SQUALL_THREADS']) {
    const v = process.env[name];
    if (v === undefined || v === '') continue;
    const n = Number(v);
    if (Number.isInteger(n) && n >= 1) return Math.min(n, MAX_THREADS);
  }
  return undefined;
}

/** Loads the wasm backend; throws an Error saying how to build it when build/wasm is missing. */
export function loadWasmBackend(options: LoadWasmOptions = {}): WasmBackend {
  const dir = options.dir ?? wasmBuildDir();
  const plainPath = join(dir, 'squall.wasm');
  if (!existsSync(plainPath)) {
    throw new Error(`the WebAssembly kernels are not built (${plainPath} is missing); build them with ` +
      '`npm run build` (or `node scripts/build-wasm.mjs`)');
  }
  const simd = options.simd ?? (process.env.SQUALL_WASM_SIMD as LoadWasmOptions['simd']) ?? 'auto';
  let bytes = readFileSync(plainPath);
  let variant = 'squall.wasm, simd128';
  const relaxedPath = join(dir, 'squall-relaxed.wasm');
  if (simd !== 'plain' && existsSync(relaxedPath)) {
    const relaxed = readFileSync(relaxedPath);
    if (simd === 'relaxed') enableRelaxedSimd();
    if (WebAssembly.validate(relaxed)) {
      bytes = relaxed;
      variant = 'squall-relaxed.wasm, simd128 + relaxed-simd';
    } else if (simd === 'relaxed') {
      throw new Error(`SQUALL_WASM_SIMD=relaxed but this runtime (Node ${process.versions.node}, V8 ${process.versions.v8}) ` +
        'does not accept relaxed SIMD, even with --experimental-wasm-relaxed-simd; use plain or auto');
    }
  }
  if (!WebAssembly.validate(bytes)) {
    throw new Error(`${plainPath} does not validate on this runtime (it needs WebAssembly SIMD and threads)`);
  }
  const module = new WebAssembly.Module(bytes);
  const script = new URL('./worker.js', import.meta.url);
  const spawner = existsSync(fileURLToPath(script)) ? new NodeSpawner(script) : null;
  const guard = options.guard ?? process.env.SQUALL_WASM_GUARD === '1';
  return createWasmBackend({
    module,
    sharedMemory: true,
    variant,
    spawner,
    threads: options.threads ?? envThreads() ?? Math.min(2, availableParallelism()),
    guard,
    convAlgorithm: options.convAlgorithm ?? (process.env.SQUALL_WASM_CONV || undefined) as ConvAlgorithm | undefined,
    details: { files: dir },
  });
}
