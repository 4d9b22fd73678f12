// Hostile and malformed Torch7 files: truncated, random, of another format, hand-crafted
// with sizes and counts far beyond the file, tensors reaching past their storage, objects
// that refer to themselves, nesting deep enough to exhaust a stack, shared modules that
// would expand exponentially, and classes Squall cannot run. Each is a ModelFormatError
// naming the file and the byte offset (UnsupportedLayerError naming the module and its
// class); none crashes, hangs or allocates from a declared size.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError, UnsupportedLayerError } from '../../engine/io/errors.js';
import type { LayerGraph } from '../../engine/io/graph/ir.js';
import { looksLikeTorch7, parseTorch7 } from '../../engine/io/torch7/index.js';
import { Rng, type Tap } from '../conformance/util.js';
import { FIXTURES } from './fixtures/model-fixtures.js';
import { T7, T7Bytes } from './fixtures/t7-bytes.js';

const FILE = 'bad.t7';
const good = new Uint8Array(readFileSync(join(FIXTURES, 'lenet5-torch7.t7')));

function parse(bytes: Uint8Array): LayerGraph | unknown {
  try {
    return parseTorch7(bytes, FILE);
  } catch (err) {
    return err;
  }
}

/** A ModelFormatError of the file at a byte offset within it. */
function atByteWithin(err: unknown, n: number): boolean {
  const m = err instanceof ModelFormatError && err.file === FILE ? /^byte offset (\d+)$/.exec(err.where) : null;
  return m !== null && Number(m[1]) <= n;
}

function expectError(t: Tap, what: string, bytes: Uint8Array, where: string | RegExp, mentions: RegExp, type = ModelFormatError): void {
  const r = parse(bytes);
  if (!(r instanceof type)) {
    t.fail(`${what}: expected a ${type.name}, got ${r instanceof Error ? r.message : 'a graph'}`);
    return;
  }
  const err = r as ModelFormatError;
  t.equal(err.file, FILE, `${what}: names the file`);
  if (typeof where === 'string') t.equal(err.where, where, `${what}: at ${where}`);
  else t.match(err.where, where, `${what}: at ${err.where}`);
  t.match(err.detail, mentions, `${what}: ${err.detail}`);
}

/** Bytes of a Torch object header ("V 1" and the class) after its tag and index. */
const header = (className: string): number => 4 + 4 + 4 + 3 + 4 + className.length;

/** nn.Sequential { modules = { [1] = <written by f> } }; the module f writes starts at byte IN_SEQUENTIAL_AT. */
function inSequential(f: (b: T7Bytes) => void): T7Bytes {
  const b = new T7Bytes();
  b.module('nn.Sequential', [['modules', (b) => {
    b.table(1);
    b.number(1);
    f(b);
  }]]);
  return b;
}

// the Sequential's header, its fields table, the key "modules", the modules table, the key 1
const IN_SEQUENTIAL_AT = header('nn.Sequential') + 12 + 8 + 'modules'.length + 12 + 12;

/** nn.Linear with a 2x2 weight tensor written by f and no bias. */
const linearWith = (f: (b: T7Bytes) => void): T7Bytes => inSequential((b) => b.module('nn.Linear', [['weight', f], ['bias', (b) => b.nil()]]));

t.test('the intact file, and recognising the format', async (t) => {
  t.ok(!(parse(good) instanceof Error), 'the LeNet fixture loads');
  t.ok(looksLikeTorch7(good), 'looksLikeTorch7(.t7)');
  t.notOk(looksLikeTorch7(new Uint8Array(readFileSync(join(FIXTURES, 'lenet5-caffe.caffemodel')))), 'a caffemodel is not Torch7');
  t.notOk(looksLikeTorch7(readFileSync(join(FIXTURES, 'lenet5-caffe.prototxt'))), 'a prototxt is not Torch7');
  t.notOk(looksLikeTorch7(new Uint8Array(3)), 'three bytes are not Torch7');
  const table = new T7Bytes();
  table.table(1);
  table.string('model');
  table.module('nn.Tanh', []);
  t.ok(looksLikeTorch7(table.bytes()), 'a saved table {model = ...} is Torch7');
  const g = parse(table.bytes()) as LayerGraph;
  t.same(g.nodes.map((n) => n.sourceType), ['nn.Tanh'], 'and its model is found under "model"');
});

t.test('truncation at many lengths', async (t) => {
  const wrong: string[] = [];
  let tried = 0;
  for (let n = 0; n < good.length; n += n < 1000 || n > good.length - 300 ? 1 : 401) {
    tried++;
    const r = parse(good.subarray(0, n));
    if (!atByteWithin(r, n) && wrong.length < 5) wrong.push(`${n}: ${r instanceof Error ? r.message : 'loaded'}`);
  }
  t.same(wrong, [], `all ${tried} truncated lengths (of ${good.length}) give a ModelFormatError at a byte within the file`);
  expectError(t, 'cut inside the storage of the parameters', good.subarray(0, 5000), /^byte offset \d+$/,
    /the size of a torch\.FloatStorage is 22278, which needs at least 89112 bytes, but only \d+ remain/);
});

t.test('random bytes and other formats', async (t) => {
  const rng = new Rng(707);
  const wrong: string[] = [];
  for (let i = 0; i < 300; i++) {
    const n = rng.int(1, 3000);
    // half of them start like a real file, so the reader gets past the first object header
    const prefix = i % 2 ? new T7Bytes().bytes() : (() => {
      const b = new T7Bytes();
      b.torch('nn.Sequential');
      return b.bytes();
    })();
    const bytes = new Uint8Array([...prefix, ...new Uint8Array(n).map(() => rng.int(0, 255))]);
    const r = parse(bytes);
    if (!atByteWithin(r, bytes.length) && !(r instanceof UnsupportedLayerError) && wrong.length < 5) {
      wrong.push(`${i}: ${r instanceof Error ? r.message : 'loaded'}`);
    }
  }
  t.same(wrong, [], '300 random files: each a ModelFormatError at a byte within the file');
  expectError(t, 'a caffemodel', new Uint8Array(readFileSync(join(FIXTURES, 'lenet5-caffe.caffemodel'))), 'byte offset 0', /unknown type tag \d+/);
  expectError(t, 'a prototxt', readFileSync(join(FIXTURES, 'lenet5-caffe.prototxt')), 'byte offset 0', /unknown type tag/);
  expectError(t, 'an empty file', new Uint8Array(0), 'byte offset 0', /a type tag needs 4 bytes but the file ends 0 bytes later/);
  const garbageClass = new T7Bytes().i32(T7.TORCH).i32(1).chars('V 1').chars('nn.Seq uential\u0001');
  expectError(t, 'an implausible class name', garbageClass.bytes(), 'byte offset 0', /implausible Torch class name/);
});

t.test('sizes and counts beyond the file', async (t) => {
  const heapBefore = process.memoryUsage().heapUsed;
  const storage = new T7Bytes();
  storage.floatStorage([1, 2, 3, 4], 2 ** 40);
  expectError(t, 'a storage of 2^40 floats', storage.bytes(), `byte offset ${header('torch.FloatStorage')}`,
    /the size of a torch\.FloatStorage is 1099511627776, which needs at least 4398046511104 bytes, but only 16 remain/);

  const table = new T7Bytes();
  table.table(2 ** 31 - 1);
  table.number(1).number(2);
  expectError(t, 'a table of 2^31 - 1 entries', table.bytes(), 'byte offset 8', /the table size is 2147483647, which needs at least/);

  const str = new T7Bytes().i32(T7.STRING).i32(2 ** 31 - 1).raw(Buffer.from('abc'));
  expectError(t, 'a string of 2^31 - 1 bytes', str.bytes(), 'byte offset 8', /a string needs 2147483647 bytes but the file ends 3 bytes later/);
  expectError(t, 'a negative string length', new T7Bytes().i32(T7.STRING).i32(-5).bytes(), 'byte offset 4', /negative length -5/);

  const dims = new T7Bytes();
  dims.torch('torch.FloatTensor');
  dims.i32(1e9);
  expectError(t, 'a tensor of 10^9 dimensions', dims.bytes(), `byte offset ${header('torch.FloatTensor')}`, /torch\.FloatTensor with 1000000000 dimensions/);

  const negative = new T7Bytes();
  negative.floatTensor([2, -3], [3, 1]);
  negative.floatStorage([1, 2, 3, 4, 5, 6]);
  expectError(t, 'a negative tensor size', negative.bytes(), `byte offset ${header('torch.FloatTensor') + 4 + 8}`, /size 2 is negative \(-3\)/);

  const beyond = new T7Bytes();
  beyond.floatStorage([], 2n ** 62n);
  expectError(t, 'a 64-bit size beyond 2^53', beyond.bytes(), `byte offset ${header('torch.FloatStorage')}`, /a storage size 4611686018427387904 is beyond 2\^53/);

  const fn = new T7Bytes().i32(6).i32(2 ** 30);
  expectError(t, 'a function of 2^30 bytes', fn.bytes(), 'byte offset 4', /the function length is 1073741824/);
  const grew = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  t.ok(grew < 64, `no large allocation (heap grew ${grew.toFixed(1)} MB)`);
});

t.test('files that would build far more objects than any model', async (t) => {
  // a table of 250 000 entries, each value a new empty table: 24 bytes in the file, hundreds in memory
  const n = 250_000;
  const bytes = Buffer.alloc(12 + 24 * n);
  bytes.writeInt32LE(T7.TABLE, 0);
  bytes.writeInt32LE(1, 4);
  bytes.writeInt32LE(n, 8);
  for (let i = 0; i < n; i++) {
    const at = 12 + 24 * i;
    bytes.writeInt32LE(T7.NUMBER, at);
    bytes.writeDoubleLE(i + 1, at + 4);
    bytes.writeInt32LE(T7.TABLE, at + 12);
    bytes.writeInt32LE(i + 2, at + 16);
    bytes.writeInt32LE(0, at + 20);
  }
  const started = Date.now();
  expectError(t, '250 000 tables', new Uint8Array(bytes), `byte offset ${12 + 24 * 199_999 + 12}`, /more than 200000 tables and objects/);
  // entries of nil keys and values: 8 bytes each
  const entries = new T7Bytes();
  entries.table(2_100_000);
  entries.raw(new Uint8Array(8 * 2_100_000));
  expectError(t, 'a table of 2.1 million entries', entries.bytes(), 'byte offset 8', /more than 2000000 table entries/);
  t.ok(Date.now() - started < 3000, `refused quickly (${Date.now() - started} ms for both)`);
});

t.test('tensors reaching past their storage', async (t) => {
  const past = linearWith((b) => {
    b.floatTensor([2, 2], [3, 1]);
    b.floatStorage([1, 2, 3, 4]);
  });
  expectError(t, 'strides past the end', past.bytes(), /^byte offset \d+$/,
    /1\.weight \(torch\.FloatTensor \[2, 2\]\): strides \[3, 1\] from storage offset 1 reach element 5 of a storage of 4/);
  const offset = linearWith((b) => {
    b.floatTensor([2, 2], [2, 1], 3);
    b.floatStorage([1, 2, 3, 4]);
  });
  expectError(t, 'an offset past the end', offset.bytes(), /^byte offset \d+$/, /from storage offset 3 reach element 6 of a storage of 4/);
  const expanded = linearWith((b) => {
    b.floatTensor([100000, 1000], [0, 0]);
    b.floatStorage([1]);
  });
  expectError(t, 'an expanded (stride 0) tensor of 10^8 elements', expanded.bytes(), /^byte offset \d+$/,
    /has 100000000 elements but its storage only 1: expanded tensors are not supported/);
  const zero = new T7Bytes();
  zero.floatTensor([2], [1], 0);
  expectError(t, 'a storage offset of 0 (it is 1-based)', zero.bytes(), `byte offset ${header('torch.FloatTensor') + 4 + 16}`, /storage offset 0 \(it is 1-based\)/);
  const noStorage = linearWith((b) => {
    b.floatTensor([2, 2], [2, 1]);
    b.nil();
  });
  expectError(t, 'a weight without storage', noStorage.bytes(), /^byte offset \d+$/, /has no storage/);
  const wrongStorage = new T7Bytes();
  wrongStorage.floatTensor([1], [1]);
  wrongStorage.string('not a storage');
  expectError(t, 'a string as storage', wrongStorage.bytes(), /^byte offset \d+$/, /the storage of a torch\.FloatTensor is the string "not a storage"/);
});

t.test('objects that refer to themselves', async (t) => {
  // nn.Sequential (index 1) whose modules table (index 3, after its fields table 2) holds the Sequential itself
  const loop = new T7Bytes();
  loop.module('nn.Sequential', [['modules', (b) => {
    b.table(1);
    b.number(1);
    b.ref(T7.TORCH, 1);
  }]]);
  expectError(t, 'a Sequential that contains itself', loop.bytes(), 'byte offset 0', /module 1 \(nn\.Sequential\): contains itself/);

  // a tensor whose storage is the tensor itself: the reference returns the tensor, which is not a storage
  const selfTensor = new T7Bytes();
  const index = selfTensor.floatTensor([1], [1]);
  selfTensor.ref(T7.TORCH, index);
  expectError(t, 'a tensor that is its own storage', selfTensor.bytes(), `byte offset ${header('torch.FloatTensor') + 4 + 24}`,
    /the storage of a torch\.FloatTensor is a torch\.FloatTensor \(byte 0\)/);

  // A table that contains itself is legitimate Lua: read once, referenced after, no recursion
  const legit = inSequential((b) => {
    const tanh = b.torch('nn.Tanh');
    const fields = b.table(2);
    b.string('again');
    b.ref(T7.TABLE, fields);
    b.string('owner');
    b.ref(T7.TORCH, tanh);
  });
  const g = parse(legit.bytes());
  t.ok(!(g instanceof Error), `a module whose fields refer to themselves and to the module loads (${g instanceof Error ? g.message : 'ok'})`);
  if (!(g instanceof Error)) t.same((g as LayerGraph).nodes.map((n) => n.sourceType), ['nn.Tanh'], 'as the one module');

  // 40 levels, each a Sequential of the previous level twice: 2^40 paths from 40 small objects
  const dag = new T7Bytes();
  dag.table(41);
  let previous = 0;
  for (let level = 0; level <= 40; level++) {
    dag.string(level === 40 ? 'model' : `level${level}`);
    if (level === 0) {
      previous = dag.module('nn.Tanh', []);
      continue;
    }
    const was = previous;
    previous = dag.module('nn.Sequential', [['modules', (b) => {
      b.table(2);
      b.number(1).ref(T7.TORCH, was);
      b.number(2).ref(T7.TORCH, was);
    }]]);
  }
  const started = Date.now();
  expectError(t, 'a shared module repeated exponentially', dag.bytes(), /^byte offset \d+$/, /more than 100000 modules/);
  t.ok(Date.now() - started < 5000, `stopped quickly (${Date.now() - started} ms)`);

  // one Linear with 2^20 weights (4 MB) used 10 times: the graph would hold 10 copies
  const shared = new T7Bytes();
  let linear = 0;
  shared.module('nn.Sequential', [['modules', (b) => {
    b.table(10);
    for (let i = 1; i <= 10; i++) {
      b.number(i);
      if (i === 1) {
        linear = b.module('nn.Linear', [['weight', (b) => {
          b.floatTensor([1024, 1024], [1024, 1]);
          b.floatStorage(new Array(1024 * 1024).fill(0.5));
        }], ['bias', (b) => b.nil()]]);
      } else {
        b.ref(T7.TORCH, linear);
      }
    }
  }]]);
  expectError(t, 'a 4 MB Linear used 10 times', shared.bytes(), /^byte offset \d+$/, /5\.weight: the layers would hold more than \d+ weight values, more than the file holds/);
  const twice = inSequential((b) => {
    const l = b.module('nn.Linear', [['weight', (b) => b.tensor([2, 2], [1, 2, 3, 4])], ['bias', (b) => b.nil()]]);
    b.number(2);
    b.ref(T7.TORCH, l);
  }).bytes();
  // inSequential declared one entry: patch the modules table's count (after the Sequential's header, fields table and key) to 2
  new DataView(twice.buffer, twice.byteOffset).setInt32(IN_SEQUENTIAL_AT - 12 - 4, 2, true);
  const sharedGraph = parse(twice);
  t.ok(!(sharedGraph instanceof Error), `a small Linear used twice loads (${sharedGraph instanceof Error ? sharedGraph.message : 'ok'})`);
  if (!(sharedGraph instanceof Error)) {
    const [a, b] = (sharedGraph as LayerGraph).nodes;
    t.same([a?.name, b?.name], ['1', '2'], 'as two nodes');
    t.ok(a?.layer.op === 'linear' && b?.layer.op === 'linear' && a.layer.weight === b.layer.weight, 'sharing one weight array');
  }

  // a chain of 300 Sequentials, each inside the next, all written at the top level of one table
  const chain = new T7Bytes();
  chain.table(301);
  previous = 0;
  for (let level = 0; level <= 300; level++) {
    chain.string(level === 300 ? 'model' : `level${level}`);
    const was = previous;
    previous = level === 0 ? chain.module('nn.Tanh', []) : chain.module('nn.Sequential', [['modules', (b) => {
      b.table(1);
      b.number(1).ref(T7.TORCH, was);
    }]]);
  }
  expectError(t, 'containers nested 300 deep', chain.bytes(), /^byte offset \d+$/, /containers nested more than 200 deep/);

  // objects nested 100000 deep in the file itself
  const deep = new T7Bytes();
  for (let i = 0; i < 100_000; i++) {
    deep.table(1);
    deep.number(1);
  }
  expectError(t, 'tables nested 100000 deep', deep.bytes(), /^byte offset \d+$/, /objects nested more than 400 deep/);
});

t.test('classes and fields Squall cannot use', async (t) => {
  expectError(t, 'an unsupported class', inSequential((b) => b.module('nn.SpatialFullConvolution', [])).bytes(), 'layer "1"',
    /type nn\.SpatialFullConvolution is not supported/, UnsupportedLayerError);
  expectError(t, 'the original Dropout', inSequential((b) => b.module('nn.Dropout', [['p', (b) => b.number(0.5)]])).bytes(), 'layer "1"',
    /type nn\.Dropout without v2/, UnsupportedLayerError);
  expectError(t, 'a Threshold that is not a ReLU', inSequential((b) => b.module('nn.Threshold', [['threshold', (b) => b.number(1e-6)], ['val', (b) => b.number(0)]])).bytes(),
    'layer "1"', /type nn\.Threshold with threshold 0\.000001 and value 0/, UnsupportedLayerError);
  expectError(t, 'a Concat along the batch', inSequential((b) => b.module('nn.Concat', [['dimension', (b) => b.number(1)], ['modules', (b) => b.table(0)]])).bytes(),
    'layer "1"', /along the batch dimension/, UnsupportedLayerError);
  const conv = (kW: (b: T7Bytes) => void, weight: (b: T7Bytes) => void): Uint8Array => inSequential((b) => b.module('nn.SpatialConvolution', [
    ['nInputPlane', (b) => b.number(2)], ['nOutputPlane', (b) => b.number(1)], ['kW', kW], ['kH', (b) => b.number(1)],
    ['weight', weight], ['bias', (b) => b.nil()],
  ])).bytes();
  expectError(t, 'a size field that is a string', conv((b) => b.string('3'), (b) => b.tensor([1, 2, 1, 1], [1, 2])), `byte offset ${IN_SEQUENTIAL_AT}`,
    /module 1 \(nn\.SpatialConvolution\): field kW should be a number, is the string "3"/);
  expectError(t, 'a weight of the wrong size', conv((b) => b.number(1), (b) => b.tensor([3], [1, 2, 3])), /^byte offset \d+$/,
    /weight has shape \[3\] \(3 values\), the module's settings need \[1, 2, 1, 1\] \(2\)/);
  const root = new T7Bytes().number(3);
  expectError(t, 'a file holding a number', root.bytes(), 'byte offset 0', /holds the number 3, not an nn module/);
});
