#!/usr/bin/env node
// Builds the AssemblyScript kernels (assembly/) into build/wasm/:
//
//   squall.wasm          SIMD128, threads: imports a shared env.memory (the host creates it,
//                        maximum 65536 pages) so worker threads share one linear memory.
//   squall-relaxed.wasm  the same plus relaxed SIMD (f32x4.relaxed_madd -> FMA). Used only
//                        when the runtime validates it (Node 20 needs
//                        --experimental-wasm-relaxed-simd); never required.
//   squall-st.wasm       SIMD128, no threads: imports a plain (non-shared) env.memory, for
//                        hosts without SharedArrayBuffer (a browser page that is not
//                        cross-origin isolated). Single-threaded.
//   squall-wasi.wasm     a WASI preview1 command module (assembly/wasi.ts, via
//                        @assemblyscript/wasi-shim): the kernels plus a self-check as _start,
//                        for any WASI runtime (`squall selftest --wasi` runs it on node:wasi).
//
// Idempotent and quick: an output is rebuilt only when a source in assembly/ (or this
// script) is newer than it; --force rebuilds everything. Builds run one after another.
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'build/wasm');
const force = process.argv.includes('--force');

const common = ['-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd'];
const threaded = ['--enable', 'threads', '--importMemory', '--sharedMemory', '--initialMemory', '1',
  '--maximumMemory', '65536'];
const targets = [
  { out: 'squall.wasm', entry: 'assembly/index.ts', args: [...common, ...threaded] },
  { out: 'squall-relaxed.wasm', entry: 'assembly/index.ts', args: [...common, '--enable', 'relaxed-simd', ...threaded] },
  { out: 'squall-st.wasm', entry: 'assembly/index.ts', args: [...common, '--importMemory', '--initialMemory', '1'] },
  { out: 'squall-wasi.wasm', entry: 'assembly/wasi.ts',
    args: [...common, '--config', 'node_modules/@assemblyscript/wasi-shim/asconfig.json'] },
];

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    const st = statSync(p);
    t = Math.max(t, st.isDirectory() ? newest(p) : st.mtimeMs);
  }
  return t;
}

const inputs = Math.max(newest(join(root, 'assembly')), statSync(fileURLToPath(import.meta.url)).mtimeMs);
const todo = targets.filter((t) => force || !existsSync(join(outDir, t.out)) || statSync(join(outDir, t.out)).mtimeMs < inputs);
if (todo.length === 0) process.exit(0);

let asc;
try {
  asc = (await import('assemblyscript/asc')).default;
} catch (err) {
  console.error(`build-wasm: cannot load the AssemblyScript compiler (run npm ci): ${err.message}`);
  process.exit(1);
}
mkdirSync(outDir, { recursive: true });

// Every target is compiled to a temporary file first and renamed only when all succeeded,
// so a reader never sees half a module and a failed build leaves no output newer than the
// sources (scripts/setup.mjs then tries again next time).
const built = [];
for (const t of todo) {
  const started = Date.now();
  const tmp = join(outDir, `${t.out}.tmp`);
  let stderr = '';
  const { error } = await asc.main([t.entry, ...t.args, '--outFile', tmp], {
    stdout: { write: (s) => { process.stdout.write(s); return true; } },
    stderr: { write: (s) => { stderr += s; return true; } },
    baseDir: root,
  });
  if (error) {
    console.error(stderr);
    console.error(`build-wasm: ${t.out} failed: ${error.message}`);
    process.exit(1);
  }
  if (stderr.trim()) process.stderr.write(stderr);
  built.push([tmp, join(outDir, t.out)]);
  console.log(`build-wasm: ${t.out} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
for (const [tmp, out] of built) renameSync(tmp, out);
writeFileSync(join(outDir, 'BUILD'), `assemblyscript kernels built ${new Date().toISOString()}\n`);
