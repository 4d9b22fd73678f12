// The builds the Node glue chooses between: relaxed SIMD when the runtime accepts it (a
// child process with --experimental-wasm-relaxed-simd must pick it and pass the
// self-check), plain SIMD otherwise, and a clear error saying how to build when
// build/wasm is missing.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadWasmBackend, wasmBuildDir } from '../../engine/backends/wasm/node.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

t.test('plain SIMD without the flag', (t) => {
  const relaxed = readFileSync(join(wasmBuildDir(), 'squall-relaxed.wasm'));
  const be = loadWasmBackend({ threads: 1 });
  if (WebAssembly.validate(relaxed)) {
    t.match(be.info().blas, /relaxed-simd/, 'this runtime accepts relaxed SIMD: the relaxed build is used');
  } else {
    t.match(be.info().blas, /simd128/, 'this runtime rejects relaxed SIMD: the plain build is used');
    t.throws(() => loadWasmBackend({ simd: 'relaxed' }), /--experimental-wasm-relaxed-simd/, 'asking for relaxed says which flag it needs');
  }
  t.match(loadWasmBackend({ simd: 'plain' }).info().blas, /simd128/, 'simd: plain forces the plain build');
  t.end();
});

t.test('relaxed SIMD under --experimental-wasm-relaxed-simd passes the self-check', (t) => {
  const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', join(root, 'bin/squall.mjs'), 'selftest'],
    { encoding: 'utf8', timeout: 300_000, env: { ...process.env, SQUALL_WASM_SIMD: 'relaxed' } });
  const wasmLines = r.stdout.split('\n').filter((l) => l.startsWith('selftest wasm'));
  if (r.status !== 0) t.comment(`${r.stdout}${r.stderr}`);
  t.equal(r.status, 0, 'squall selftest exits 0');
  t.ok(wasmLines.length >= 5 && wasmLines.every((l) => /relaxed-simd/.test(l) && /ok /.test(l)),
    `every wasm check ran on the relaxed build and passed (${wasmLines.length} checks)`);
  t.end();
});

t.test('the conformance GEMM and convolution tests pass on the relaxed build', (t) => {
  for (const file of ['gemm.test.js', 'conv.test.js']) {
    const path = join(root, 'dist/test/conformance', file);
    if (!existsSync(path)) {
      t.pass(`${file} not built here, skipped`);
      continue;
    }
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', path],
      { encoding: 'utf8', timeout: 300_000, env: { ...process.env, SQUALL_WASM_SIMD: 'relaxed', SQUALL_TEST_BACKENDS: 'wasm' } });
    if (r.status !== 0) t.comment(r.stdout.split('\n').filter((l) => /not ok/.test(l)).slice(0, 20).join('\n'));
    t.equal(r.status, 0, `${file} under --experimental-wasm-relaxed-simd`);
  }
  t.end();
});

t.test('a missing build says how to build', (t) => {
  t.throws(() => loadWasmBackend({ dir: join(root, 'no-such-dir') }), /not built.*npm run build/, 'clear error');
  t.end();
});
