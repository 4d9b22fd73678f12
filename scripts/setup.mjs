#!/usr/bin/env node
// One set-up for both README commands: system packages (apt, as root), npm packages, the
// native build, the wasm build and the TypeScript build. Each step runs only when its
// output is missing or older than its inputs, so a second run takes about a second.
// Uses nothing but Node's standard library: it runs before `npm ci`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildOnly = process.argv.includes('--build-only');
const notes = [];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: opts.quiet ? 'pipe' : 'inherit', env: process.env, ...opts });
  if (r.error) return { ok: false, out: String(r.error.message) };
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Newest modification time below `path` (files whose name passes `keep`). */
function newest(path, keep = () => true) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return keep(path) ? st.mtimeMs : 0;
  let t = 0;
  for (const e of readdirSync(path)) {
    if (e === 'node_modules' || e === 'target' || e === 'dist' || e.startsWith('.')) continue;
    t = Math.max(t, newest(join(path, e), keep));
  }
  return t;
}

function mtime(path) {
  return existsSync(path) ? statSync(path).mtimeMs : 0;
}

// 1. System packages (MKL, OpenBLAS, Fashion-MNIST, the PyTorch peer).
if (!buildOnly) {
  const r = run('bash', [join(root, 'scripts/setup-apt.sh')]);
  if (!r.ok) notes.push('system packages: the apt step failed (see above); continuing with what is installed');
}

// 2. npm packages.
const lockStamp = join(root, 'node_modules/.package-lock.json');
if (!existsSync(lockStamp) || mtime(join(root, 'package-lock.json')) > mtime(lockStamp)) {
  console.log('squall setup: npm install');
  // npm ci rejects npm 11's lock files that omit other platforms' optional packages; install honours the lock.
  const r = run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error']);
  if (!r.ok) {
    console.error('squall setup: npm install failed');
    process.exit(1);
  }
}

// 3. Native module (Rust, raw Node-API). Without cargo the engine runs on what it has.
const nativeOut = join(root, 'native/squall.linux-x64-gnu.node');
const crateDir = join(root, 'crates');
if (!has('cargo')) {
  if (!existsSync(nativeOut)) notes.push('native: no Rust toolchain (cargo), skipped the native build; the engine uses the wasm backend');
} else if (newest(crateDir) > mtime(nativeOut)) {
  console.log('squall setup: building the native module (cargo, release)');
  mkdirSync(join(root, 'native'), { recursive: true });
  const r = run(join(root, 'node_modules/.bin/napi'), ['build', '--release', '--platform',
    '--manifest-path', 'crates/squall-native/Cargo.toml', '--output-dir', 'native']);
  if (!r.ok) {
    console.error('squall setup: the native build failed');
    process.exit(1);
  }
}

// 4. WebAssembly kernels (AssemblyScript).
const asEntry = join(root, 'assembly/index.ts');
if (existsSync(asEntry)) {
  const wasmOut = join(root, 'build/wasm/squall.wasm');
  if (newest(join(root, 'assembly')) > mtime(wasmOut)) {
    console.log('squall setup: building the wasm kernels (asc)');
    const r = run('node', [join(root, 'scripts/build-wasm.mjs')]);
    if (!r.ok) {
      console.error('squall setup: the wasm build failed');
      process.exit(1);
    }
  }
} else {
  notes.push('wasm: no AssemblyScript kernels in this version yet; only the native backend is built');
}

// 5. TypeScript.
const tsStamp = join(root, 'dist/.build-stamp');
const tsInputs = Math.max(...['engine', 'transport', 'test', 'bench'].map((d) => newest(join(root, d), (p) => p.endsWith('.ts'))),
  mtime(join(root, 'tsconfig.json')));
if (tsInputs > mtime(tsStamp)) {
  console.log('squall setup: compiling TypeScript');
  const r = run(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json']);
  if (!r.ok) {
    console.error('squall setup: TypeScript compilation failed');
    process.exit(1);
  }
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(tsStamp, new Date().toISOString() + '\n');
}

for (const n of notes) console.log(`squall setup: ${n}`);
