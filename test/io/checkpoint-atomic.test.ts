// Atomic saving: the bytes go to a temporary file that is renamed over the target only once
// complete and synced; a save that fails at any point leaves an existing file as it was and
// no temporary file behind.
import t from 'tap';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, saveCheckpoint, saveModel } from '../../engine/io/checkpoint/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { Tensor } from '../../engine/tensor/tensor.js';
import { listDir, rejection, scratchDir } from './checkpoint-util.js';

t.test('atomic writes', async (t) => {
  const dir = scratchDir(t, 'ckpt-atomic');
  const path = join(dir, 'model.sqck');
  const m1 = lenet5().reset(1);
  const m2 = lenet5().reset(2);
  await saveCheckpoint(path, { model: m1, meta: { version: 'old' } });
  const old = readFileSync(path);
  t.same(listDir(dir), ['model.sqck']);

  t.test('a save that fails midway leaves the old file intact and no temporary file', async (t) => {
    const seen: string[][] = [];
    let oldDuring = false;
    const err = await rejection(t, saveCheckpoint(path, {
      model: m2, meta: { version: 'new' }, bufferBytes: 4096,
      onProgress: (written, total) => {
        seen.push(listDir(dir));
        oldDuring = readFileSync(path).equals(old);
        if (written > total / 2) throw new Error('simulated failure in the middle of the payload');
      },
    }), 'failing save');
    t.match((err as Error).message, /^.*model\.sqck: saving failed: simulated failure/, 'the error names the file and the cause');
    t.ok(seen.length > 0 && seen.every((names) => names.length === 2 && names.some((n) => /^model\.sqck\.tmp-\d+-[0-9a-f]+$/.test(n))),
      `while writing, the data went to a temporary file beside the target (${seen[0]?.join(', ')})`);
    t.ok(oldDuring, 'the target held the old bytes during the write');
    t.ok(readFileSync(path).equals(old), 'old file intact after the failure');
    t.same(listDir(dir), ['model.sqck'], 'no temporary file left');
    t.equal((await loadCheckpoint(path)).meta.version, 'old', 'the old checkpoint still loads');
  });

  t.test('invalid input fails before anything is written', async (t) => {
    const bigint = await rejection(t, saveCheckpoint(path, { model: m2, meta: { n: 1n } as unknown as Record<string, unknown> }), 'BigInt meta');
    t.match((bigint as Error).message, /must be JSON/, 'meta must be JSON');
    const st = (b: string) => ({ name: 'sgd' as const, iteration: 0, epoch: 0, hyper: {}, buffers: { [b]: new Float32Array(2) } });
    const dup = await rejection(t, saveCheckpoint(path, { model: m2, optimizers: { 'a.b': st('c'), a: st('b.c') } }), 'two tensors with one name');
    t.match((dup as Error).message, /both named "optimizer\.a\.b\.c"/);
    const unknown = await rejection(t, saveCheckpoint(path, { model: m2, modelSpec: 'resnet50' }), 'unknown model name');
    t.match((unknown as Error).message, /unknown model "resnet50"/);
    const state = { name: 'sgd', iteration: 0, epoch: 0, hyper: {}, buffers: { momentum: [1, 2] } } as never;
    const badOpt = await rejection(t, saveCheckpoint(path, { model: m2, optimizers: [state] }), 'buffer that is not a Float32Array');
    t.match((badOpt as Error).message, /Float32Array/);
    t.same(listDir(dir).filter((n) => n.includes('.tmp-')), [], 'no temporary files');
  });

  t.test('a failing rename (the target is a directory) removes the temporary file', async (t) => {
    const target = join(dir, 'taken');
    mkdirSync(target);
    const err = await rejection(t, saveModel(target, m2), 'rename over a directory');
    t.match((err as Error).message, /taken: saving failed/, (err as Error).message);
    t.ok(statSync(target).isDirectory(), 'the directory is untouched');
    t.same(listDir(dir).filter((n) => n.includes('.tmp-')), [], 'no temporary files');
    const missing = await rejection(t, saveModel(join(dir, 'no', 'such', 'dir.sqm'), m2), 'missing directory');
    t.equal((missing as NodeJS.ErrnoException).code, 'ENOENT');
  });

  t.test('a successful save replaces the file; concurrent saves leave one complete file', async (t) => {
    const r = await saveCheckpoint(path, { model: m2, meta: { version: 'new' } });
    t.equal(statSync(path).size, r.bytes);
    const ck = await loadCheckpoint(path);
    t.equal(ck.meta.version, 'new');
    t.same(Array.from(ck.tensor('model.0.weight').data), Array.from(m2.parameters()[0]!.value.data), 'new values');
    await Promise.all([1, 2, 3, 4].map((i) => saveCheckpoint(path, { model: i % 2 ? m1 : m2, meta: { version: `v${i}` }, bufferBytes: 8192 })));
    const last = await loadCheckpoint(path);
    t.ok(['v1', 'v2', 'v3', 'v4'].includes(last.meta.version as string), `one complete file (${last.meta.version})`);
    t.same(listDir(dir).filter((n) => n.includes('.tmp-')), [], 'no temporary files');
  });
});
