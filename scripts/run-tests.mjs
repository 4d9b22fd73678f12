#!/usr/bin/env node
// Runs the tap suite on the compiled tests and ends with the plain summary line CI reads:
// "N passed, N failed" (", N skipped" when some were skipped).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Every compiled *.test.js under dist/test (helpers beside them are not test files). */
function testFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.js') ? [relative(root, join(dir, e.name))] : []).sort();
}
const files = process.argv.slice(2);
const args = ['--disable-coverage', '--reporter=tap', '--timeout=300', '--jobs=2',
  ...(files.length ? files : testFiles(join(root, 'dist/test')))];
const child = spawn(join(root, 'node_modules/.bin/tap'), args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });

let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on('close', (code) => {
  // tap's last lines hold "# { total: T, pass: P, fail: F, skip: S, todo: D }".
  const m = /#\s*\{([^}]*)\}\s*\n[^]*$/.exec(tail);
  const field = (name) => {
    const f = m && new RegExp(`\\b${name}:\\s*(\\d+)`).exec(m[1]);
    return f ? Number(f[1]) : 0;
  };
  const passed = field('pass');
  let failed = field('fail');
  const skipped = field('skip') + field('todo');
  if (code !== 0 && failed === 0) failed = 1; // a crash that tap did not count is still a failure
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code ?? 1);
});
