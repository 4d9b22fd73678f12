#!/usr/bin/env node
// Runs the tap suite on the compiled tests and ends with the plain summary line CI reads:
// "N passed, N failed" (", N skipped" when some were skipped).
//
// Before the tests it prints the host (CPU model, SIMD features, the OpenBLAS variables the
// environment set, the BLAS provider the native module chose and how), so that a failure
// that happens on one kind of host only can be read from the CI log.
//
// Every test process preloads scripts/test-linger.mjs, which fails a file whose process
// is still alive SQUALL_TEST_LINGER_MS (default 5000) after its last test, naming the
// open handles. The per-file limit is SQUALL_TEST_TIMEOUT_S seconds (default 90, so that a
// hang fails in a minute and a half: every file but the few that raise their own limit with
// t.setTimeout() takes under 40 s on an idle machine and under 60 s beside a CPU-bound load).
import { spawn, execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Every compiled *.test.js under dist/test (helpers beside them are not test files). */
function testFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.js') ? [relative(root, join(dir, e.name))] : []).sort();
}

/** SIMD features worth knowing when a kernel misbehaves on one kind of CPU only. */
const SIMD = ['sse4_1', 'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx_vnni', 'avx512f', 'avx512cd', 'avx512bw', 'avx512dq',
  'avx512vl', 'avx512ifma', 'avx512vbmi', 'avx512_vbmi2', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'avx512_bitalg',
  'avx512_vpopcntdq', 'amx_tile', 'amx_bf16', 'amx_int8', 'pclmulqdq', 'vpclmulqdq', 'gfni', 'vaes', 'sha_ni'];

function cpuLines() {
  let text;
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch (e) {
    return [`cpu         unknown (/proc/cpuinfo: ${e.code ?? e.message})`];
  }
  const field = (name) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const flags = new Set((field('flags') ?? '').split(/\s+/));
  const logical = text.match(/^processor\s*:/gm)?.length ?? 0;
  const family = [field('cpu family'), field('model'), field('stepping')];
  return [
    `cpu         ${field('model name') ?? 'unknown'} (${logical} logical CPUs${family[0] ? `, family ${family[0]} model ${family[1]} stepping ${family[2]}` : ''})`,
    `simd        ${SIMD.filter((f) => flags.has(f)).join(' ') || '(none of the listed)'}`,
  ];
}

/** The native backend's BLAS choice, from `squall info --json` in a child process. */
function blasLines() {
  // Calibration runs when no cached result fits this host; it takes seconds, not a minute.
  const limitS = 60;
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin/squall.mjs'), 'info', '--json'], { cwd: root, timeout: limitS * 1000, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        let report;
        try {
          report = JSON.parse(stdout);
        } catch {
          const why = error ? (error.killed ? `killed after ${limitS} s` : error.message.split('\n')[0]) : 'its output is not JSON';
          resolve([`blas        unknown: \`squall info --json\` failed (${why})${stderr ? `: ${stderr.trim().split('\n').slice(-1)[0]}` : ''}`]);
          return;
        }
        const native = report.backends?.find((b) => b.name === 'native');
        if (!native) {
          const u = report.unavailable?.find((b) => b.name === 'native');
          resolve([`blas        native backend unavailable${u?.reason ? ` (${u.reason})` : ''}`]);
          return;
        }
        const d = native.details ?? {};
        const lines = [
          `blas        ${d.provider ?? '?'} selected by ${d.selectedBy ?? '?'} (loaded: ${d.providers ?? '?'}); kernel ${native.blas}, ${native.threads} threads`,
        ];
        if (d.calibration) lines.push(`calibration ${d.calibration}${d.cacheFile ? ` (cache ${d.cacheFile})` : ''}`);
        if (d.builtin) lines.push(`builtin     ${d.builtin}`);
        if (d.reproducible) lines.push(`reproducible ${d.reproducible}`);
        if (d.notes) lines.push(`notes       ${d.notes}`);
        resolve(lines);
      });
  });
}

const lingerMs = process.env.SQUALL_TEST_LINGER_MS ?? '5000';
const timeoutS = process.env.SQUALL_TEST_TIMEOUT_S ?? '90';
const header = [
  ...cpuLines(),
  ...['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'].map((v) => `${v.padEnd(11)} ${process.env[v] === undefined ? '(not set)' : process.env[v]}`),
  ...(await blasLines()),
  `node        ${process.version}; per-file limit ${timeoutS} s; linger check ${lingerMs} ms`,
];
// '#' makes these TAP comments, so a reader of the TAP stream skips them too.
for (const line of header) console.log(`# ${line}`);

const files = process.argv.slice(2);
const args = ['--disable-coverage', '--reporter=tap', `--timeout=${timeoutS}`, '--jobs=2',
  `--node-arg=--import=${join(root, 'scripts/test-linger.mjs')}`,
  ...(files.length ? files : testFiles(join(root, 'dist/test')))];
const child = spawn(join(root, 'node_modules/.bin/tap'), args, {
  cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SQUALL_TEST_LINGER_MS: lingerMs },
});

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
