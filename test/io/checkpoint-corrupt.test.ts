// Truncated, corrupt and hostile files: every one gives a CheckpointFormatError naming the
// file and the byte offset of the fault; nothing crashes and nothing is allocated from a
// declared size (a header or tensor claiming gigabytes is rejected against the real size).
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CheckpointFormatError, CheckpointMismatchError, loadCheckpoint, loadModelFile, parseCheckpoint, saveCheckpoint,
} from '../../engine/io/checkpoint/index.js';
import { lenet5 } from '../../engine/models/index.js';
import type { Backend } from '../../engine/backends/backend.js';
import { SGD } from '../../engine/optim/index.js';
import type { Tap } from '../conformance/util.js';
import { fixChecksum, isFormatError, layoutOf, rejection, scratchDir, setU32, withHeader } from './checkpoint-util.js';

/** Optimisers need a backend only to step; this one steps by doing nothing. */
const fakeBackend = { sgdUpdate: () => {}, adamUpdate: () => {} } as unknown as Backend;

async function makeFile(dir: string): Promise<{ path: string; bytes: Uint8Array }> {
  const model = lenet5().reset(3);
  const opt = new SGD(fakeBackend, model.parameterCount(), { lr: 0.1, momentum: 0.9 });
  opt.step(new Float32Array(model.parameterCount()), new Float32Array(model.parameterCount()));
  const path = join(dir, 'good.sqck');
  await saveCheckpoint(path, { model, modelSpec: 'lenet5', optimizers: [opt], meta: { epoch: 2, note: 'ünïcödé' } });
  return { path, bytes: new Uint8Array(readFileSync(path)) };
}

/** Writes `bytes` to `name` in dir, loads it, and checks the error. */
async function expectLoadError(t: Tap, dir: string, name: string, bytes: Uint8Array, what: string,
  mentions: (string | RegExp)[] = [], offset?: number): Promise<CheckpointFormatError | undefined> {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  const err = await rejection(t, loadCheckpoint(p), what);
  isFormatError(t, err, p, what, mentions, offset);
  if (err instanceof CheckpointFormatError) t.ok(err.offset <= bytes.length, `${what}: offset ${err.offset} is within the file (${bytes.length} bytes)`);
  return err instanceof CheckpointFormatError ? err : undefined;
}

/** parseCheckpoint on bytes in memory: the error, or null when it parsed. */
function parseError(bytes: Uint8Array): unknown {
  try {
    parseCheckpoint(bytes, 'mem.sqck');
    return null;
  } catch (err) {
    return err;
  }
}

t.test('corrupt and hostile files', async (t) => {
  const dir = scratchDir(t, 'ckpt-bad');
  const { path: goodPath, bytes: good } = await makeFile(dir);
  const l = layoutOf(good);
  const size = good.length;
  const firstTensor = (l.header.tensors as { name: string }[])[0]!.name;

  t.test('the intact file loads', async (t) => {
    const ck = await loadCheckpoint(goodPath);
    t.equal(ck.meta.note, 'ünïcödé', 'non-ASCII meta survives');
    t.equal(parseError(good), null, 'parses in memory');
  });

  t.test('truncation at any length', async (t) => {
    // In memory: every length up to past the header, then every 61st, and the last 200.
    // All are rejected with a format error at an offset within the truncated file.
    const wrong: string[] = [];
    let tried = 0;
    for (let n = 0; n < size; n += n < l.payloadStart + 256 || n > size - 200 ? 1 : 61) {
      tried++;
      const err = parseError(good.subarray(0, n));
      if (!(err instanceof CheckpointFormatError) || err.path !== 'mem.sqck' || !(err.offset >= 0 && err.offset <= n)) {
        if (wrong.length < 5) wrong.push(`${n}: ${err instanceof Error ? err.message : String(err)}`);
        else if (wrong.length === 5) wrong.push('...');
      }
    }
    t.same(wrong, [], `all ${tried} truncated lengths (of ${size}) give a CheckpointFormatError`);
    // And through the file loader at the interesting points.
    const points = [0, 1, 7, 8, 12, 15, 16, 20, 16 + (l.headerLength >> 1), 16 + l.headerLength, l.payloadStart,
      l.payloadStart + 1, (l.payloadStart + l.trailerAt) >> 1, l.trailerAt - 1, l.trailerAt, l.trailerAt + 8, size - 1];
    for (const n of points) {
      const words = n < 32 ? ['truncated'] : n < l.payloadStart + 16 ? [/header length|truncated/] : ['truncated', `ends at byte ${n}`];
      await expectLoadError(t, dir, `trunc-${n}.sqck`, good.subarray(0, n), `truncated to ${n} bytes`, words);
    }
  });

  t.test('a flipped byte anywhere is caught', async (t) => {
    const cases: [number, string, (string | RegExp)[], number?][] = [
      [3, 'magic', ['not a Squall checkpoint (magic'], 0],
      [9, 'version', ['unsupported format version'], 8],
      [16 + 2, 'header', ['checksum mismatch', 'corrupt'], l.trailerAt],
      [16 + l.headerLength - 3, 'end of the header', ['checksum mismatch'], l.trailerAt],
      [l.payloadStart + 5, 'payload', ['checksum mismatch'], l.trailerAt],
      [l.trailerAt - 1, 'last payload byte', ['checksum mismatch'], l.trailerAt],
      [l.trailerAt + 1, 'stored checksum', ['checksum mismatch'], l.trailerAt],
      [l.trailerAt + 9, 'end marker', ['no end marker'], l.trailerAt],
    ];
    for (const [at, what, words, offset] of cases) {
      const b = good.slice();
      b[at] ^= 0x10;
      await expectLoadError(t, dir, `flip-${at}.sqck`, b, `byte ${at} (${what}) flipped`, words, offset);
    }
    // A sweep: every 257th byte and all of the first 128, each flipped in memory.
    const wrong: string[] = [];
    for (let at = 0; at < size; at += at < 128 ? 1 : 257) {
      for (const mask of [0x01, 0x80]) {
        const b = good.slice();
        b[at] ^= mask;
        const err = parseError(b);
        if (!(err instanceof CheckpointFormatError) || err.offset > size) wrong.push(`${at}^${mask}: ${err instanceof Error ? err.message : err}`);
      }
    }
    t.same(wrong.slice(0, 5), [], 'every flipped byte of the sweep gives a CheckpointFormatError');
  });

  t.test('wrong magic, other files, versions, header lengths', async (t) => {
    const b = good.slice();
    b.set(Buffer.from('SQUALLCX'), 0);
    await expectLoadError(t, dir, 'magic.sqck', b, 'wrong magic', ['not a Squall checkpoint (magic "SQUALLCX"', 'expected "SQUALLCK"'], 0);
    await expectLoadError(t, dir, 'text.sqck', Buffer.from('hello, this is a text file and not a checkpoint at all\n'), 'a text file',
      ['not a Squall checkpoint'], 0);
    await expectLoadError(t, dir, 'png.sqck', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]), 'a PNG header',
      ['not a Squall checkpoint'], 0);
    await expectLoadError(t, dir, 'empty.sqck', new Uint8Array(0), 'an empty file', ['truncated', '0 bytes'], 0);

    for (const v of [2, 0, 0xffffffff]) {
      const f = good.slice();
      setU32(f, 8, v);
      await expectLoadError(t, dir, `v${v}.sqck`, f, `format version ${v}`, [`unsupported format version ${v}`, 'reads version 1'], 8);
    }
    for (const [hl, what] of [[size, 'the file size'], [size - 31, 'just past the end'], [0xfffffff0, '0xFFFFFFF0'], [0xffffffff, '0xFFFFFFFF']] as const) {
      const f = good.slice();
      setU32(f, 12, hl);
      const before = process.memoryUsage().arrayBuffers;
      await expectLoadError(t, dir, `hl-${hl}.sqck`, f, `header length ${what}`, [`header length ${hl} runs past the end of the file`], 12);
      t.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, `header length ${what}: no large allocation`);
    }
    const short = good.slice();
    setU32(short, 12, l.headerLength - 5);
    await expectLoadError(t, dir, 'hl-short.sqck', short, 'header length too short (checksum intact)', ['checksum mismatch']);
    await expectLoadError(t, dir, 'hl-short-fixed.sqck', fixChecksum(short), 'header length too short (checksum fixed)',
      [/not valid JSON|not valid UTF-8|header field/]);
  });

  t.test('hostile headers with a valid checksum', async (t) => {
    const payloadBytes = l.trailerAt - l.payloadStart;
    const cases: [string, (h: Record<string, any>) => void, (string | RegExp)[]][] = [
      ['tensor offset past the end', (h) => { h.tensors[0].offset = payloadBytes + 64; }, [firstTensor, 'run past the end']],
      ['tensor offset far past the end', (h) => { h.tensors[0].offset = 2 ** 52; }, [firstTensor, 'run past the end']],
      ['tensor running over the end', (h) => { h.tensors.at(-1).offset = payloadBytes - 64; }, ['run past the end']],
      ['huge tensor', (h) => { h.tensors[0].shape = [2 ** 20, 2 ** 20]; h.tensors[0].length = 2 ** 40; }, [firstTensor, 'run past the end']],
      ['shape product overflowing', (h) => { h.tensors[0].shape = [2 ** 30, 2 ** 30, 2 ** 30]; h.tensors[0].length = 2; }, [firstTensor, 'too many elements']],
      ['shape product != length', (h) => { h.tensors[0].shape = [6, 1, 5, 4]; }, [firstTensor, 'but the tensor\'s length is 150']],
      ['negative dimension', (h) => { h.tensors[0].shape = [-6, 1, 5, 5]; }, [firstTensor, 'shape[0]', 'non-negative integer']],
      ['fractional offset', (h) => { h.tensors[0].offset = 0.5; }, [firstTensor, 'offset', 'non-negative integer']],
      ['unaligned offset', (h) => { h.tensors[1].offset += 4; }, ['not a multiple of 64']],
      ['overlapping tensors', (h) => { h.tensors[1].offset = h.tensors[0].offset; }, ['overlaps']],
      ['duplicate names', (h) => { h.tensors[1].name = h.tensors[0].name; }, ['appears twice']],
      ['unknown dtype', (h) => { h.tensors[0].dtype = 'f64'; }, ['dtype', '"f64"']],
      ['unknown role', (h) => { h.tensors[0].role = 'weights'; }, ['role']],
      ['tensors not a list', (h) => { h.tensors = { a: 1 }; }, ['tensors', 'must be an array']],
      ['payload size huge', (h) => { h.payloadBytes = 2 ** 50; }, ['payloadBytes', 'runs past the trailer']],
      ['payload size small', (h) => { h.payloadBytes -= 64; }, ['payloadBytes', 'before the trailer']],
      ['payload size missing', (h) => { delete h.payloadBytes; }, ['payloadBytes', 'non-negative integer']],
      ['unknown kind', (h) => { h.kind = 'pytorch'; }, ['kind']],
      ['model name not a string', (h) => { h.model = { name: 5 }; }, ['model.name']],
      ['classes not positive', (h) => { h.model = { name: 'lenet5', args: { classes: -1 } }; }, ['model.args.classes']],
      ['optimizer buffer names a missing tensor', (h) => { h.optimizers['0'].buffers.momentum = 'optimizer.9.momentum'; }, ['optimizer.9.momentum', 'not in the file']],
      ['optimizer iteration negative', (h) => { h.optimizers['0'].iteration = -1; }, ['iteration']],
      ['optimizer hyper not a number', (h) => { h.optimizers['0'].hyper.lr = 'fast'; }, ['hyper.lr']],
      ['meta not an object', (h) => { h.meta = [1]; }, ['meta', 'must be an object']],
    ];
    for (const [what, mutate, words] of cases) {
      await expectLoadError(t, dir, `hostile-${what.replace(/\W+/g, '-')}.sqck`, withHeader(good, mutate), what, words);
    }
    const raw: [string, string | Uint8Array, (string | RegExp)[]][] = [
      ['header JSON cut short', '{"kind":"squall-model","tensors":[', ['not valid JSON']],
      ['header JSON with garbage', '{"kind": squall}', ['not valid JSON']],
      ['header is an array', '[]', ['must be an object']],
      ['header is null', 'null', ['must be an object']],
      ['header not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), ['not valid UTF-8']],
      ['deeply nested header', '['.repeat(200000), ['not valid JSON']],
      ['empty header', '', ['not valid JSON']],
    ];
    for (const [what, json, words] of raw) {
      const err = await expectLoadError(t, dir, `raw-${what.replace(/\W+/g, '-')}.sqck`, withHeader(good, () => {}, json), what, words);
      if (err) t.ok(err.offset >= 16, `${what}: the offset (${err.offset}) points into the header`);
    }
    const gp = withHeader(good, (h) => { h.tensors[0].offset = 2 ** 52; });
    const err = parseError(gp);
    t.ok(err instanceof CheckpointFormatError && err.offset === l.trailerAt && err.message.includes(`file offset ${l.payloadStart + 2 ** 52}`),
      `an offset past the end is reported at the payload's end, naming the declared file offset: ${(err as Error).message}`);
  });

  t.test('not a file, missing file, a model file naming an unknown model', async (t) => {
    const sub = join(dir, 'a-directory');
    mkdirSync(sub);
    const err = await rejection(t, loadCheckpoint(sub), 'a directory');
    isFormatError(t, err, sub, 'a directory', ['not a regular file'], 0);
    const missing = await rejection(t, loadCheckpoint(join(dir, 'nope.sqck')), 'a missing file');
    t.equal((missing as NodeJS.ErrnoException).code, 'ENOENT', 'a missing file is ENOENT');
    const p = join(dir, 'resnet.sqm');
    writeFileSync(p, withHeader(good, (h) => { h.model = { name: 'resnet50', args: {} }; }));
    const e2 = await rejection(t, loadModelFile(p), 'unknown model');
    t.ok(e2 instanceof CheckpointMismatchError && e2.message.includes('"resnet50"') && e2.message.includes('lenet5'),
      `names the unknown model and the known ones: ${(e2 as Error).message}`);
  });
});
