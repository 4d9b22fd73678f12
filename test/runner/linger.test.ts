// The check scripts/run-tests.mjs installs in every test process (scripts/test-linger.mjs):
// a file whose process outlives its last test by SQUALL_TEST_LINGER_MS fails, and the
// failure names what was left open; a file that closes everything passes, and the check's
// own timer keeps no process alive. The fixtures run through the real runner, as the suite's
// files do.
import t from 'tap';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const fixture = (name: string): string => `dist/test/runner/fixtures/${name}.js`;

interface Run { code: number | null; out: string; ms: number }

/** scripts/run-tests.mjs on `files`, outside this tap run (its TAP_* variables would make the inner tap a child). */
function runTests(files: string[], lingerMs: number): Promise<Run> {
  const env: NodeJS.ProcessEnv = { SQUALL_TEST_LINGER_MS: String(lingerMs), SQUALL_TEST_TIMEOUT_S: '60' };
  for (const [k, v] of Object.entries(process.env)) if (!/^(TAP|_TAPJS)/.test(k) && !(k in env)) env[k] = v;
  const t0 = Date.now();
  const child = spawn(process.execPath, [join(root, 'scripts/run-tests.mjs'), ...files], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, ms: Date.now() - t0 }));
  });
}

/** The runner's verdict line for one file ("ok" or "not ok"), or undefined if it has none. */
function verdict(out: string, file: string): string | undefined {
  return new RegExp(`^(ok|not ok) \\d+ - ${file.replace(/[.]/g, '\\.')}\\b`, 'm').exec(out)?.[1];
}

t.test('a file that outlives its last test fails, naming what it left open', async (t) => {
  const run = await runTests([fixture('leaves-server'), fixture('leaves-socket'), fixture('closes-everything')], 1000);
  const { out } = run;
  t.not(run.code, 0, 'the run fails');
  t.match(out.trimEnd().split('\n').at(-1), /^\d+ passed, 2 failed$/, 'the summary counts the two leaking files');

  t.equal(verdict(out, fixture('leaves-server')), 'not ok', 'leaves-server (no root teardown, root test never ends) failed');
  const port = /# port (\d+)/.exec(out)?.[1];
  t.ok(port, 'the fixture printed its port');
  t.match(out, `still alive 1000 ms after its last test: server listening on 127.0.0.1:${port}`, 'the listening server named with its address');
  t.match(out, /interval 1000 ms heartbeat\(\) made at [^\n]*leaves-server/, 'the interval named with its function and where it was made');
  t.match(out, /worker thread \d+ \(eval "setInterval/, 'the worker thread named with its code');

  t.equal(verdict(out, fixture('leaves-socket')), 'not ok', 'leaves-socket (root teardown ran, root test ended) failed');
  const clientPort = /# client port (\d+)/.exec(out)?.[1];
  const pid = /# child pid (\d+)/.exec(out)?.[1];
  t.ok(clientPort && pid, 'the fixture printed its client port and child pid');
  t.match(out, new RegExp(`TCP socket 127\\.0\\.0\\.1:${clientPort} -> 127\\.0\\.0\\.1:\\d+`), 'the client connection named with both ends');
  t.match(out, new RegExp(`child process pid ${pid} ${process.execPath.replace(/[.]/g, '\\.')} -e`), 'the child process named with pid and command');

  t.equal(verdict(out, fixture('closes-everything')), 'ok',
    'closes-everything passed, though its set-up and its test each took longer than the linger limit');
});

t.test('the check keeps no process alive', async (t) => {
  // With a limit far above the fixture's own time, a process held open by the check's timer
  // would take the whole limit to end.
  const run = await runTests([fixture('closes-everything')], 120_000);
  t.equal(run.code, 0, 'the run passes');
  t.match(run.out.trimEnd().split('\n').at(-1), /^\d+ passed, 0 failed$/, 'the summary counts no failure');
  t.ok(run.ms < 60_000, `the run ended in ${run.ms} ms, long before the 120 s limit`);
});
