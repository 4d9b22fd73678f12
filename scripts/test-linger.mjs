// Preloaded into every test process by scripts/run-tests.mjs (tap --node-arg=--import=...).
// A test file whose process is still alive SQUALL_TEST_LINGER_MS (default 5000) after its
// last test finished is failed here, naming the handles that keep it alive, instead of
// hanging until tap's per-file limit with every assertion reported as passed.
//
// The trigger is tap's root test: its 'idle' event (no subtest running or queued) and its
// 'complete' event. 'complete' alone would miss the commonest leak: a file without a root
// teardown only ends its root test on 'beforeExit', which an open handle prevents.
// Everything here is unref'd, so the check itself never keeps a process alive.
//
// The root test is caught as tap creates it (tap stores the singleton on globalThis under a
// registered symbol), so nothing here imports tap: a process forked by a test inherits
// this preload through execArgv, never creates a root test, and is left alone.
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const lingerMs = Number(process.env.SQUALL_TEST_LINGER_MS ?? 5000);

if (isMainThread && lingerMs > 0) {
  const key = Symbol.for('TAP private constructor');
  let root;
  Object.defineProperty(globalThis, key, {
    configurable: true,
    get: () => root,
    set(value) {
      root = value;
      watch(value);
    },
  });
}

/** Live timers made through the globals, so a report can say what each one was for. */
const timers = new Set();

function trackTimers() {
  for (const name of ['setTimeout', 'setInterval']) {
    const original = globalThis[name];
    const tracked = function (fn, ms, ...args) {
      const timer = original.call(this, fn, ms, ...args);
      // A stack costs about 2 µs; it is the one clue to which code made the timer.
      const made = {};
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 4;
      Error.captureStackTrace(made, tracked);
      Error.stackTraceLimit = limit;
      timers.add({ timer, kind: name === 'setInterval' ? 'interval' : 'timeout', ms, fn, made });
      // Pruning by the thousand keeps the set small without a hook on every callback.
      if (timers.size > 1000) for (const e of timers) if (e.timer._destroyed) timers.delete(e);
      return timer;
    };
    Object.defineProperty(tracked, 'name', { value: name });
    globalThis[name] = tracked;
  }
}

/** Live worker threads and whether each is ref'd: Node lists no handle for a worker. */
const workers = new Map();

function trackWorkers() {
  const wt = createRequire(import.meta.url)('node:worker_threads');
  const Original = wt.Worker;
  wt.Worker = class Worker extends Original {
    constructor(file, options) {
      super(file, options);
      const what = options?.eval ? `eval ${JSON.stringify(String(file).slice(0, 60))}` : String(file);
      workers.set(this, { what, ref: true });
      this.once('exit', () => workers.delete(this));
    }
    ref() {
      if (workers.has(this)) workers.get(this).ref = true;
      return super.ref();
    }
    unref() {
      if (workers.has(this)) workers.get(this).ref = false;
      return super.unref();
    }
  };
  // `import { Worker } from 'node:worker_threads'` reads the patched class from here on.
  syncBuiltinESMExports();
}

function watch(t) {
  trackTimers();
  trackWorkers();
  let timer;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(check, lingerMs);
    timer.unref();
  };
  // A subtest still running (or a root teardown still closing things) is not a linger;
  // the next 'idle' or 'complete' re-arms the check.
  // Before the first test, an idle root only means top-level code is still setting up.
  const check = () => {
    if (t.results) return report(t, true);
    if (t.idle && !t.ended && t.count > 0) return report(t, false);
  };
  t.on('idle', arm);
  t.on('complete', arm);
}

function report(t, ended) {
  const handles = openHandles();
  const message = `the process is still alive ${lingerMs} ms after its last test: ${handles.join('; ')}`;
  if (!ended) {
    // Reported as a failed assertion of the file itself, so it shows among the results.
    t.fail(message, { handles, resources: process.getActiveResourcesInfo(), at: null });
    t.end();
  } else {
    // The root test's output is already complete: the exit code is what fails the file.
    process.stdout.write(`# not ok: ${message}\n`);
  }
  process.stderr.write(`test-linger: ${message}\n`);
  process.exit(1);
}

/** One line per handle, timer or request that keeps the event loop alive. */
function openHandles() {
  const stdio = new Set([process.stdin, process.stdout, process.stderr]);
  const out = process._getActiveHandles().filter((h) => !stdio.has(h)).map(describe);
  for (const e of timers) {
    if (e.timer._destroyed || !e.timer.hasRef()) continue;
    const at = (e.made.stack ?? '').split('\n').slice(1).map((l) => l.trim().replace(/^at /, '')).join(' < ');
    out.push(`${e.kind} ${e.ms ?? 0} ms${e.fn?.name ? ` ${e.fn.name}()` : ''}${at ? ` made at ${at}` : ''}`);
  }
  // Timers made before tap loaded (or through node:timers) are only counted, by type.
  const untracked = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    - [...timers].filter((e) => !e.timer._destroyed && e.timer.hasRef()).length;
  if (untracked > 0) out.push(`${untracked} timer(s) made outside the tracked globals`);
  for (const [w, { what, ref }] of workers) if (ref) out.push(`worker thread ${w.threadId} (${what})`);
  for (const r of process._getActiveRequests()) out.push(`request ${r?.constructor?.name ?? typeof r}`);
  if (!out.length) out.push(...nativeSuspects());
  return out;
}

/**
 * With nothing visible to JavaScript, libuv's own list still shows what holds the loop (a
 * native addon's async handle, say), and the addons loaded are the suspects.
 */
function nativeSuspects() {
  try {
    const report = process.report.getReport();
    const held = new Map();
    for (const h of report.libuv ?? []) if (h.is_active && h.is_referenced) held.set(h.type, (held.get(h.type) ?? 0) + 1);
    const addons = (report.sharedObjects ?? []).filter((f) => f.endsWith('.node')).map((f) => f.split('/node_modules/').at(-1));
    return [
      `no handle visible to JavaScript; libuv handles holding the loop: ${[...held].map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}`,
      `native addons loaded: ${addons.join(', ') || 'none'}`,
    ];
  } catch (err) {
    return [`no handle visible to JavaScript (process.report failed: ${err?.message ?? err})`];
  }
}

function describe(h) {
  const type = h?.constructor?.name ?? typeof h;
  try {
    if (type === 'ChildProcess') return `child process pid ${h.pid} ${[h.spawnfile, ...(h.spawnargs ?? []).slice(1)].join(' ').slice(0, 200)}`;
    if (type === 'Server' && typeof h.address === 'function') {
      const a = h.address();
      return `server listening on ${typeof a === 'string' ? a : a ? `${a.address}:${a.port}` : '(not bound)'}`;
    }
    if (type === 'Socket' && typeof h.setBroadcast === 'function') { // dgram
      const a = h.address();
      return `UDP socket on ${a.address}:${a.port}`;
    }
    if (type === 'Socket') {
      if (h.remotePort !== undefined) return `TCP socket ${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}`;
      return `socket (pipe${h._handle?.fd >= 0 ? ` fd ${h._handle.fd}` : ''})`;
    }
    if (type === 'MessagePort') return 'MessagePort (a worker channel still listening)';
  } catch {
    // A half-closed handle can throw from address(); its type is still worth printing.
  }
  return type;
}
