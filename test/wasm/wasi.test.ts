// `squall selftest --wasi` runs the WASI build of the kernels (build/wasm/squall-wasi.wasm)
// under node:wasi and passes; the module is a plain WASI preview1 command (memory and _start
// exported, nothing imported but wasi_snapshot_preview1), so any WASI runtime can run it.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmBuildDir } from '../../engine/backends/wasm/node.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

t.test('squall selftest --wasi passes', (t) => {
  const r = spawnSync(process.execPath, [join(root, 'bin/squall.mjs'), 'selftest', '--wasi'], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) t.comment(`${r.stdout}${r.stderr}`);
  t.equal(r.status, 0, 'exit status 0');
  t.match(r.stdout, /wasi selftest: ok +sgemm NN/, 'GEMM checked inside the WASI module');
  t.match(r.stdout, /wasi selftest: ok +conv2d backward filter/, 'convolution checked inside the WASI module');
  t.match(r.stdout, /selftest --wasi: passed/, 'reports that it passed');
  t.notMatch(r.stdout, /FAIL/, 'no check failed');
  t.end();
});

t.test('the WASI module imports only WASI preview1', async (t) => {
  const module = await WebAssembly.compile(readFileSync(join(wasmBuildDir(), 'squall-wasi.wasm')));
  const imports = WebAssembly.Module.imports(module);
  t.ok(imports.length > 0 && imports.every((i) => i.module === 'wasi_snapshot_preview1'),
    `imports: ${imports.map((i) => `${i.module}.${i.name}`).join(', ')}`);
  const exports = WebAssembly.Module.exports(module).map((e) => e.name);
  t.ok(exports.includes('_start') && exports.includes('memory'), 'exports _start and memory');
  t.ok(exports.includes('sgemm') && exports.includes('conv2dForward'), 'and the kernels');
});
