// Hostile and mismatched Caffe files: truncated, random, of another format, with lengths
// that claim far more than the file holds, or with blobs that do not fit the prototxt.
// Each one is a ModelFormatError naming the file and the byte offset (binary) or the layer
// (blob problems); none crashes, hangs or allocates from a declared size.
import t from 'tap';
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { loadCaffe, looksLikeCaffeModel, looksLikePrototxt, parseCaffe } from '../../engine/io/caffe/index.js';
import { ModelFormatError } from '../../engine/io/errors.js';
import type { LayerGraph } from '../../engine/io/graph/ir.js';
import { Rng, type Tap } from '../conformance/util.js';
import { FIXTURES } from './fixtures/model-fixtures.js';

const PROTOTXT_FILE = join(FIXTURES, 'lenet5-caffe.prototxt');
const CAFFEMODEL_FILE = join(FIXTURES, 'lenet5-caffe.caffemodel');
const prototxt = readFileSync(PROTOTXT_FILE, 'utf8');
const model = new Uint8Array(readFileSync(CAFFEMODEL_FILE));

/** The graph of the LeNet prototxt (or `text`) with `bytes` as its caffemodel "bad.caffemodel", or the error. */
function load(bytes: Uint8Array, text = prototxt): LayerGraph | unknown {
  try {
    return parseCaffe({ prototxt: { file: 'lenet5.prototxt', bytes: Buffer.from(text) }, caffemodel: { file: 'bad.caffemodel', bytes } });
  } catch (err) {
    return err;
  }
}

const isGraph = (v: unknown): v is LayerGraph => typeof v === 'object' && v !== null && 'nodes' in v;

/** An error of the caffemodel at a byte offset within the n bytes it has, or at a layer. */
function acceptable(err: unknown, n: number): boolean {
  if (!(err instanceof ModelFormatError) || err.file !== 'bad.caffemodel') return false;
  const byte = /^byte offset (\d+)$/.exec(err.where);
  return byte ? Number(byte[1]) <= n : /^layer "[^"]+"$/.test(err.where);
}

function expectCaffeModelError(t: Tap, what: string, bytes: Uint8Array, where: RegExp, mentions: RegExp, text = prototxt): void {
  const r = load(bytes, text);
  if (!(r instanceof ModelFormatError)) {
    t.fail(`${what}: expected a ModelFormatError, got ${isGraph(r) ? 'a graph' : String(r)}`);
    return;
  }
  t.equal(r.file, 'bad.caffemodel', `${what}: names the caffemodel`);
  t.match(r.where, where, `${what}: at ${r.where}`);
  t.match(r.detail, mentions, `${what}: ${r.detail}`);
}

/** Protobuf varint. */
function varint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}
const field = (id: number, wire: number): number[] => varint(id * 8 + wire);
const lengthDelimited = (id: number, body: number[]): number[] => [...field(id, 2), ...varint(body.length), ...body];
const text = (s: string): number[] => [...Buffer.from(s)];

t.test('the intact files load', async (t) => {
  const g = load(model);
  t.ok(isGraph(g), 'the fixture loads');
  t.ok(looksLikeCaffeModel(model), 'looksLikeCaffeModel(caffemodel)');
  t.ok(looksLikePrototxt(prototxt), 'looksLikePrototxt(prototxt)');
});

t.test('truncation at many lengths', async (t) => {
  const full = load(model) as LayerGraph;
  const wrong: string[] = [];
  let tried = 0;
  let loaded = 0;
  for (let n = 0; n < model.length; n += n < 400 || n > model.length - 300 ? 1 : 397) {
    tried++;
    const r = load(model.subarray(0, n));
    if (isGraph(r)) {
      // Protobuf has no end marker: a cut between top-level fields after every blob (before the
      // trailing loss layer) is a complete caffemodel. Then it must hold all the weights.
      loaded++;
      const same = r.nodes.every((node, i) => {
        const a = node.layer;
        const b = full.nodes[i]!.layer;
        return (a.op !== 'conv' && a.op !== 'linear') || (b.op === a.op && Buffer.compare(Buffer.from(a.weight!.buffer), Buffer.from(b.weight!.buffer)) === 0);
      });
      if (!same && wrong.length < 5) wrong.push(`${n}: loaded with other weights`);
    } else if (!acceptable(r, n) && wrong.length < 5) {
      wrong.push(`${n}: ${r instanceof Error ? r.message : String(r)}`);
    }
  }
  t.same(wrong, [], `all ${tried} truncated lengths (of ${model.length}) give a ModelFormatError at a byte within the file or a layer, ` +
    `or (${loaded} of them) all the weights`);
  // the last top-level field is the blob-less loss layer: without it the file is complete
  const reader = protobuf.Reader.create(model);
  let lastField = 0;
  while (reader.pos < reader.len) {
    lastField = reader.pos;
    reader.skipType(reader.uint32() & 7);
  }
  const cut = load(model.subarray(0, lastField));
  t.ok(isGraph(cut) && cut.nodes.every((n, i) => JSON.stringify(n) === JSON.stringify(full.nodes[i])),
    `a cut before the trailing loss layer (byte ${lastField}) loads, with every weight`);
  expectCaffeModelError(t, 'cut inside the last weight blob', model.subarray(0, model.length - 200), /^byte offset \d+$/, /index out of range/);
  expectCaffeModelError(t, 'empty file', new Uint8Array(0), /^layer "conv"$/, /has no weights in the caffemodel; the prototxt's layer needs weight \[6, 1, 5, 5\], bias \[6\]/);
});

t.test('random bytes and other formats', async (t) => {
  const rng = new Rng(606);
  const wrong: string[] = [];
  for (let i = 0; i < 200; i++) {
    const bytes = new Uint8Array(rng.int(1, 3000)).map(() => rng.int(0, 255));
    const r = load(bytes);
    if (!acceptable(r, bytes.length) && wrong.length < 5) wrong.push(`${i}: ${r instanceof Error ? r.message : 'loaded'}`);
    if (looksLikeCaffeModel(bytes) && !(r instanceof ModelFormatError) && wrong.length < 5) wrong.push(`${i}: sniffed as caffemodel and loaded`);
  }
  t.same(wrong, [], '200 random files: each a ModelFormatError of the caffemodel');

  const t7 = new Uint8Array(readFileSync(join(FIXTURES, 'lenet5-torch7.t7')));
  t.notOk(looksLikeCaffeModel(t7), 'a Torch7 file does not look like a caffemodel');
  expectCaffeModelError(t, 'a Torch7 file as caffemodel', t7, /^byte offset \d+$/, /not a valid caffemodel/);
  t.notOk(looksLikeCaffeModel(Buffer.from(prototxt)), 'a prototxt does not look like a caffemodel');
  expectCaffeModelError(t, 'the prototxt as caffemodel', Buffer.from(prototxt), /^byte offset \d+$/, /not a valid caffemodel/);
  t.notOk(looksLikePrototxt(readFileSync(join(FIXTURES, 'write_caffe.py'), 'utf8')), 'Python source does not look like a prototxt');
  t.notOk(looksLikePrototxt(readFileSync(join(FIXTURES, 'lenet5-caffe-io.json'), 'utf8')), 'JSON does not look like a prototxt');
  t.notOk(looksLikePrototxt(Buffer.from(model).toString('latin1')), 'a caffemodel does not look like a prototxt');

  // the files swapped: the caffemodel given as the prototxt
  try {
    parseCaffe({ prototxt: { file: 'swapped.prototxt', bytes: model } });
    t.fail('a caffemodel as prototxt loaded');
  } catch (err) {
    t.ok(err instanceof ModelFormatError && err.file === 'swapped.prototxt' && err.where === 'byte offset 0' && /is a binary caffemodel, not a prototxt/.test(err.detail),
      `a caffemodel given as the prototxt says so: ${(err as Error).message}`);
  }
  await t.rejects(loadCaffe(join(FIXTURES, 'no-such.prototxt')), { name: 'ModelFormatError', where: 'file' }, 'a missing file is a ModelFormatError');
});

t.test('lengths that claim more than the file holds', async (t) => {
  const heapBefore = process.memoryUsage().heapUsed;
  // a layer claiming 2^31 bytes
  expectCaffeModelError(t, 'huge layer length', new Uint8Array([...field(100, 2), ...varint(2 ** 31), ...lengthDelimited(1, text('conv'))]),
    /^byte offset \d+$/, /index out of range/);
  // a layer with a blob whose packed float data claims 2^30 bytes
  const blob = [...field(5, 2), ...varint(2 ** 30), 0, 0, 0x80, 0x3f];
  const layer = [...lengthDelimited(1, text('conv')), ...lengthDelimited(7, blob)];
  expectCaffeModelError(t, 'huge packed data length', new Uint8Array(lengthDelimited(100, layer)), /^byte offset \d+$/,
    /index out of range|packed values of 1073741824 bytes run past the end of the blob/);
  // a string claiming 2^35 bytes (a varint longer than 32 bits)
  expectCaffeModelError(t, 'huge name length', new Uint8Array([...field(1, 2), ...varint(2 ** 35)]), /^byte offset \d+$/, /index out of range|invalid/);
  // a blob declaring a shape of 10^12 values but holding 4: the shape check comes before any copy
  const bigShape = lengthDelimited(7, [...lengthDelimited(1, [...varint(1e6), ...varint(1e6)])]);
  const bigLayer = [...lengthDelimited(1, text('conv')), ...lengthDelimited(7, [...bigShape, ...lengthDelimited(5, [0, 0, 0, 0])])];
  expectCaffeModelError(t, 'huge declared blob shape', new Uint8Array(lengthDelimited(100, bigLayer)), /^layer "conv"$/,
    /has 1 blob\(s\) in the caffemodel \(\[1000000, 1000000\]\), the prototxt's layer needs 2/);
  // unknown field 15 as groups nested 100000 deep
  const groups = new Uint8Array(200_000);
  for (let i = 0; i < 100_000; i++) groups.set(field(15, 3), i * 2);
  expectCaffeModelError(t, 'groups nested 100000 deep', groups, /^byte offset \d+$/, /nesting|depth|invalid|range/);
  const grew = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  t.ok(grew < 64, `no large allocation (heap grew ${grew.toFixed(1)} MB)`);
});

t.test('files that would decode into far more objects than bytes', async (t) => {
  // 150 000 empty layers (3 bytes each) would be 150 000 messages with their defaults
  const started = Date.now();
  const empty = new Uint8Array(150_000 * 3);
  for (let i = 0; i < 150_000; i++) empty.set([...field(100, 2), 0], i * 3);
  expectCaffeModelError(t, '150 000 empty layers', empty, /^byte offset \d+$/, /more messages and values than any real caffemodel/);
  // a million one-byte blob dims: the blob decoder stops at Caffe's 32 axes
  const dims = [...lengthDelimited(1, text('conv')), ...lengthDelimited(7, lengthDelimited(7, lengthDelimited(1, new Array(1_000_000).fill(1))))];
  expectCaffeModelError(t, 'a million blob dims', new Uint8Array(lengthDelimited(100, dims)), /^byte offset \d+$/, /the blob shape has more than 32 axes/);
  t.ok(Date.now() - started < 3000, `refused quickly (${Date.now() - started} ms for both)`);
});

t.test('blobs that do not fit the prototxt', async (t) => {
  expectCaffeModelError(t, 'a different kernel count', model, /^layer "conv"$/,
    /blob 0 \(weight\) has shape \[6, 1, 5, 5\] in the caffemodel, the prototxt's layer needs \[8, 1, 5, 5\]/,
    prototxt.replace('num_output: 6', 'num_output: 8'));
  expectCaffeModelError(t, 'a layer the caffemodel lacks', model, /^layer "fc9"$/, /has no weights in the caffemodel/,
    prototxt.replace('name: "fc2"', 'name: "fc9"'));
  expectCaffeModelError(t, 'an extra blob (bias_term false in the prototxt)', model, /^layer "conv2"$/,
    /has 2 blob\(s\) in the caffemodel \(\[12, 6, 5, 5\], \[12\]\), the prototxt's layer needs 1 \(weight \[12, 6, 5, 5\]\)/,
    prototxt.replace(/(name: "conv2"[^]*?num_output: 12)/, '$1\n    bias_term: false'));
  // the blob's data shorter than its shape
  const fc = lengthDelimited(7, [...lengthDelimited(7, lengthDelimited(1, [...varint(2), ...varint(3)])), ...lengthDelimited(5, [0, 0, 0, 0])]);
  expectCaffeModelError(t, 'data shorter than the shape', new Uint8Array(lengthDelimited(100, [...lengthDelimited(1, text('fc')), ...fc])),
    /^layer "fc"$/, /blob 0 \(weight\) of shape \[2, 3\] holds 1 float values instead of 6/,
    'input: "x" input_dim: 1 input_dim: 3 input_dim: 1 input_dim: 1\nlayer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 bias_term: false } }');
  // two caffemodel layers of one name carrying weights
  const conv = new Uint8Array(readFileSync(CAFFEMODEL_FILE));
  const twice = new Uint8Array([...conv, ...conv]);
  expectCaffeModelError(t, 'two weighted layers of one name', twice, /^layer "conv"$/, /two layers of the caffemodel with this name carry weights/);
});

t.test('mutated prototxts', async (t) => {
  // Random edits of the LeNet prototxt: each result loads or is a ModelFormatError at a
  // line:column, a layer, the net or an input; never another exception.
  const rng = new Rng(808);
  const alphabet = ['{', '}', ':', '"', "'", '#', '\n', '-', '1', '0', 'e', 'x', ' ', '<', '>', '[', ']', ',', '\\', '.', 'layer', 'bottom: "x"'];
  const wrong: string[] = [];
  let loaded = 0;
  for (let i = 0; i < 400; i++) {
    let text = prototxt;
    for (let e = rng.int(1, 3); e > 0; e--) {
      const at = rng.int(0, text.length);
      const kind = rng.int(0, 2);
      if (kind === 0) text = text.slice(0, at) + text.slice(at + rng.int(1, 12));
      else if (kind === 1) text = text.slice(0, at) + rng.pick(alphabet) + text.slice(at);
      else {
        const lines = text.split('\n');
        const l = rng.int(0, lines.length - 1);
        lines.splice(l, 0, lines[l]!);
        text = lines.join('\n');
      }
    }
    try {
      parseCaffe({ prototxt: { file: 'mutated.prototxt', bytes: Buffer.from(text) } });
      loaded++;
    } catch (err) {
      const ok = err instanceof ModelFormatError && err.file === 'mutated.prototxt' &&
        /^(line \d+:\d+|layer "[^"]*"|net|input "[^"]*")$/.test(err.where);
      if (!ok && wrong.length < 5) wrong.push(`${i}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    }
  }
  t.same(wrong, [], `400 mutated prototxts: ${loaded} still load, the rest are ModelFormatErrors with a place`);
  t.ok(loaded < 400, 'the mutations do break files');
});
