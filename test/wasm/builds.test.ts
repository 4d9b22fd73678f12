// The builds the Node glue chooses between: relaxed SIMD when the runtime accepts it (a
// child process with --experimental-wasm-relaxed-simd must pick it and pass the
// self-check; the squall command and SQUALL_WASM_SIMD=relaxed turn the flag on
// themselves), plain SIMD otherwise, and a clear error saying how to build when
// build/wasm is missing.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadWasmBackend, relaxedSimdAccepted, wasmBuildDir } from '../../engine/backends/wasm/node.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

t.test('auto takes relaxed SIMD only when the runtime accepts it; asking for relaxed turns it on', (t) => {
  const acceptedBefore = relaxedSimdAccepted();
  t.equal(acceptedBefore, WebAssembly.validate(readFileSync(join(wasmBuildDir(), 'squall-relaxed.wasm'))),
    'the probe module agrees with the relaxed build about this runtime');
  const auto = loadWasmBackend({ threads: 1 });
  t.match(auto.info().blas, acceptedBefore ? /relaxed-simd/ : /assemblyscript simd128/, `auto: ${auto.info().blas}`);
  const plain = loadWasmBackend({ simd: 'plain', threads: 1 });
  t.match(plain.info().blas, /assemblyscript simd128/, 'simd: plain forces the plain build');
  // Asking for relaxed on Node 20 sets --experimental-wasm-relaxed-simd in this process.
  const relaxed = loadWasmBackend({ simd: 'relaxed', threads: 1 });
  t.match(relaxed.info().blas, /relaxed-simd/, 'simd: relaxed loads the relaxed build, turning the V8 flag on if needed');
  t.ok(relaxedSimdAccepted(), 'the runtime accepts relaxed SIMD afterwards');
  // Both builds against a float64 product: the FMA build is as accurate as the plain one.
  const m = 37, n = 45, k = 300;
  const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.37));
  const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.11));
  for (const [name, be] of [['plain', plain], ['relaxed', relaxed]] as const) {
    const c = new Float32Array(m * n);
    be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
    let worst = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let ref = 0;
        let mag = 0;
        for (let p = 0; p < k; p++) {
          ref += a[i * k + p]! * b[p * n + j]!;
          mag += Math.abs(a[i * k + p]! * b[p * n + j]!);
        }
        worst = Math.max(worst, Math.abs(c[i * n + j]! - ref) / mag);
      }
    }
    t.ok(worst < 1e-5, `${name} sgemm within 1e-5 of float64 (relative to sum |a b|: ${worst.toExponential(1)})`);
  }
  for (const be of [auto, plain, relaxed]) be.dispose();
  t.end();
});

t.test('the squall command runs the relaxed build unless SQUALL_WASM_SIMD=plain', (t) => {
  const info = (env: Record<string, string>): string => spawnSync(process.execPath, [join(root, 'bin/squall.mjs'), 'info'],
    { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } }).stdout;
  const { SQUALL_WASM_SIMD: _ignored, ...rest } = process.env;
  const byDefault = spawnSync(process.execPath, [join(root, 'bin/squall.mjs'), 'info'], { encoding: 'utf8', timeout: 120_000, env: rest }).stdout;
  t.match(byDefault, /module\s+squall-relaxed\.wasm, simd128 \+ relaxed-simd/, 'no flag on the command line: the relaxed build');
  t.match(info({ SQUALL_WASM_SIMD: 'plain' }), /module\s+squall\.wasm, simd128\n/, 'SQUALL_WASM_SIMD=plain: the plain build');
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
