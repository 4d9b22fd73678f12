// Hostile and broken ONNX files: every one must give a ModelFormatError (or its subclass
// UnsupportedLayerError) naming the file and the byte offset or the node, never another
// exception, a hang or an allocation sized by what the file declares.
//   - the LeNet-5 fixture cut at ~130 lengths; 300 seeded random byte strings; other files
//   - length prefixes of 2^31 (a tensor's raw_data, a packed float field) in small files,
//     tensors declaring 2^40 elements, ConstantOfShape asking for 10^12 elements
//   - reference loops (a node reading its own output, a cycle of three), undefined and
//     doubly defined values, messages nested 200 deep
//   - operators Squall does not run (named with their type), a residual Add (refused by
//     the module builder, naming the node)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ModelFormatError, UnsupportedLayerError, buildModule, importOnnx, loadModel } from '../../engine/io/index.js';
import { ModelProto } from '../../engine/io/onnx/schema.js';
import { Rng } from '../conformance/util.js';
import { scratchDir } from './checkpoint-util.js';
import { rejectsModelError, throwsModelError } from './model-errors.js';
import { FIXTURES } from './onnx-util.js';

// ---- building small models --------------------------------------------------------------

const FLOAT = 1;
const INTS = 7;

interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attribute?: Record<string, unknown>[];
}

function valueInfo(name: string, dims: (number | string)[]): Record<string, unknown> {
  return { name, type: { tensor_type: { elem_type: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d })) } } } };
}

function encodeModel(nodes: NodeSpec[], options: { initializer?: Record<string, unknown>[]; input?: [string, (number | string)[]]; outputs?: string[] } = {}): Uint8Array {
  const [inName, inDims] = options.input ?? ['x', ['N', 4]];
  return ModelProto.encode(ModelProto.fromObject({
    ir_version: 7,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'g',
      node: nodes.map((n, i) => ({ name: n.name ?? `n${i}`, op_type: n.op, input: n.inputs, output: n.outputs, domain: n.domain ?? '', attribute: n.attribute ?? [] })),
      initializer: options.initializer ?? [],
      input: [valueInfo(inName, inDims)],
      output: (options.outputs ?? [nodes[nodes.length - 1]!.outputs[0]!]).map((o) => valueInfo(o, ['N', 4])),
    },
  })).finish();
}

/** A protobuf varint. */
function varint(v: number): number[] {
  const out: number[] = [];
  let x = v;
  while (x >= 0x80) {
    out.push((x % 0x80) | 0x80);
    x = Math.floor(x / 0x80);
  }
  out.push(x);
  return out;
}

/** A length-delimited field. */
function field(num: number, body: number[]): number[] {
  return [...varint(num * 8 + 2), ...varint(body.length), ...body];
}

const memory = (): number => process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed;

// ---- the tests ----------------------------------------------------------------------------

const dir = scratchDir(t, 'onnx-hostile');
const lenet = readFileSync(join(FIXTURES, 'lenet5.onnx'));

t.test('the LeNet-5 file cut short at many lengths', async (t) => {
  const cuts = new Set<number>();
  for (let n = 0; n < 64; n++) cuts.add(n);
  for (let n = 64; n < lenet.length; n += 997) cuts.add(n);
  for (let n = lenet.length - 48; n < lenet.length; n++) cuts.add(n);
  let atOffset = 0;
  const other: string[] = [];
  for (const n of cuts) {
    const file = `lenet5-cut-${n}.onnx`;
    const err = throwsModelError(t, () => importOnnx(lenet.subarray(0, n), file), [file], `cut at ${n}`);
    if (!err) continue;
    const m = /^byte offset (\d+)$/.exec(err.where);
    if (m) {
      atOffset++;
      t.ok(Number(m[1]) <= n, `cut at ${n}: the offset ${m[1]} is inside the ${n} bytes`);
    } else {
      other.push(`${n}: ${err.where}`);
    }
  }
  t.ok(atOffset >= cuts.size - 2, `${atOffset} of ${cuts.size} cuts are reported at a byte offset (others: ${other.join('; ') || 'none'})`);

  // Through loadModel: still recognised as ONNX by content, named by its path.
  const path = join(dir, 'cut.model');
  writeFileSync(path, lenet.subarray(0, 5000));
  const err = await rejectsModelError(t, loadModel(path), [path, /: byte offset \d+: /, 'truncated'], 'loadModel of a cut ONNX file');
  t.equal(err?.file, path, 'the error names the file');
});

t.test('random bytes and other files', async (t) => {
  const rng = new Rng(91);
  let decodeErrors = 0;
  for (let i = 0; i < 300; i++) {
    const bytes = new Uint8Array(1 + rng.int(0, 2000));
    for (let k = 0; k < bytes.length; k++) bytes[k] = rng.int(0, 255);
    if (i % 3 === 0) bytes[0] = 0x08; // looks like ir_version to the sniffer
    const err = throwsModelError(t, () => importOnnx(bytes, `random-${i}.onnx`), [`random-${i}.onnx`], `random bytes #${i}`);
    if (err && err.where.startsWith('byte offset')) decodeErrors++;
  }
  t.ok(decodeErrors > 100, `${decodeErrors} random files fail while decoding, at an offset`);
  throwsModelError(t, () => importOnnx(new Uint8Array(0), 'empty.onnx'), ['empty.onnx', 'byte offset 0', 'empty'], 'empty file');
  throwsModelError(t, () => importOnnx(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]), 'image.png'), ['image.png', 'byte offset'], 'a PNG');
  throwsModelError(t, () => importOnnx(Buffer.from('SQUALLCK\x01\x00\x00\x00'), 'squall.onnx'), ['squall.onnx'], 'a Squall header');
  throwsModelError(t, () => importOnnx(Buffer.from('name: "LeNet"\nlayer { type: "Convolution" }\n'), 'net.onnx'), ['net.onnx'], 'a prototxt');
  // ir_version 7 and nothing else: a protobuf, but no graph
  throwsModelError(t, () => importOnnx(Uint8Array.from([0x08, 0x07]), 'no-graph.onnx'), ['no-graph.onnx', 'no graph'], 'no graph');

  const random = join(dir, 'random.onnx');
  writeFileSync(random, Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff));
  await rejectsModelError(t, loadModel(random), [random, 'not a model file Squall reads', 'ONNX'], 'loadModel of garbage names the file and the formats it knows');
});

t.test('declared sizes far beyond the file', async (t) => {
  const before = memory();
  // ModelProto { ir_version 7, graph { initializer { dims 4, data_type FLOAT, raw_data: length 2^31 + 8 real bytes } } }
  const tensor = [0x08, 0x04, 0x10, 0x01, 0x4a, ...varint(2 ** 31), 1, 2, 3, 4, 5, 6, 7, 8];
  const huge = Uint8Array.from([0x08, 0x07, ...field(7, field(5, tensor))]);
  const lengthAt = huge.length - 8 - varint(2 ** 31).length;
  const err = throwsModelError(t, () => importOnnx(huge, 'huge-raw.onnx'), ['huge-raw.onnx', 'byte offset', 'runs past the end'], 'raw_data with a 2^31 length prefix');
  const at = Number(/byte offset (\d+)/.exec(err?.where ?? '')?.[1]);
  t.ok(at >= lengthAt - 1 && at <= huge.length, `reported at byte ${at}, where the length prefix (byte ${lengthAt}) points past the end`);
  // A packed float_data field with a length prefix of 2^31 - 1.
  const packed = Uint8Array.from([0x08, 0x07, ...field(7, field(5, [0x08, 0x02, 0x10, 0x01, 0x22, ...varint(2 ** 31 - 1), 0, 0, 0x80, 0x3f]))]);
  throwsModelError(t, () => importOnnx(packed, 'huge-floats.onnx'), ['huge-floats.onnx', 'byte offset'], 'float_data with a 2^31 - 1 length prefix');

  const path = join(dir, 'huge.onnx');
  writeFileSync(path, huge);
  await rejectsModelError(t, loadModel(path), [path, 'byte offset', 'runs past the end'], 'through loadModel');

  // Well-formed protobuf, but a tensor declaring 2^40 elements with 8 bytes of data; and one past 2^53.
  const conv = (dims: number[]): Uint8Array => encodeModel([{ op: 'Conv', inputs: ['x', 'w'], outputs: ['y'] }], {
    input: ['x', ['N', 1, 4, 4]], initializer: [{ name: 'w', dims, data_type: FLOAT, raw_data: new Uint8Array(8) }],
  });
  throwsModelError(t, () => importOnnx(conv([2 ** 20, 2 ** 20, 1, 1]), 'big-dims.onnx'), ['big-dims.onnx', 'initializer "w"', '1099511627776', 'holds 8 bytes'],
    'dims of 2^40 elements');
  throwsModelError(t, () => importOnnx(conv([2 ** 30, 2 ** 30, 2 ** 30, 1]), 'overflow.onnx'), ['overflow.onnx', 'initializer "w"', '2^53'], 'dims past 2^53');
  // ConstantOfShape of [10^6, 10^6] feeding a Reshape: refused before allocating.
  const cos = encodeModel([
    { op: 'ConstantOfShape', name: 'zeros', inputs: ['shape'], outputs: ['z'] },
    { op: 'Reshape', inputs: ['x', 'z'], outputs: ['y'] },
  ], { initializer: [{ name: 'shape', dims: [2], data_type: 7, int64_data: [1e6, 1e6] }] });
  throwsModelError(t, () => importOnnx(cos, 'constant-of-shape.onnx'), ['node "zeros" (ConstantOfShape)', '1000000000000 elements'], 'ConstantOfShape of 10^12 elements');
  t.ok(memory() - before < 256 << 20, `no large allocation (${((memory() - before) / 2 ** 20).toFixed(1)} MiB more in use)`);
});

t.test('reference loops and broken wiring', async (t) => {
  throwsModelError(t, () => importOnnx(encodeModel([{ op: 'Relu', name: 'self', inputs: ['y'], outputs: ['y'] }]), 'self.onnx'),
    ['self.onnx', 'node "self" (Relu)', 'reads its own output "y"'], 'a node reading its own output');
  const cycle = encodeModel([
    { op: 'Relu', name: 'a', inputs: ['c_out'], outputs: ['a_out'] },
    { op: 'Tanh', name: 'b', inputs: ['a_out'], outputs: ['b_out'] },
    { op: 'Concat', name: 'c', inputs: ['x', 'b_out'], outputs: ['c_out'], attribute: [{ name: 'axis', type: 2, i: 1 }] },
    { op: 'Sigmoid', name: 'd', inputs: ['c_out'], outputs: ['y'] },
  ]);
  throwsModelError(t, () => importOnnx(cycle, 'cycle.onnx'), ['cycle.onnx', 'cycle of 3 nodes', '"a"', '"b"', '"c"'], 'a cycle of three nodes');
  throwsModelError(t, () => importOnnx(encodeModel([{ op: 'Relu', name: 'r', inputs: ['nowhere'], outputs: ['y'] }]), 'undefined.onnx'),
    ['node "r" (Relu)', 'reads "nowhere"', 'no node, initializer or graph input defines'], 'an undefined value');
  throwsModelError(t, () => importOnnx(encodeModel([
    { op: 'Relu', name: 'r1', inputs: ['x'], outputs: ['y'] }, { op: 'Tanh', name: 'r2', inputs: ['x'], outputs: ['y'] },
  ]), 'twice.onnx'), ['node "r2" (Tanh)', 'writes "y"', 'node "r1" (Relu) writes too'], 'a value written twice');
  throwsModelError(t, () => importOnnx(encodeModel([{ op: 'Relu', inputs: ['x'], outputs: ['y'] }], { outputs: ['z'] }), 'no-output.onnx'),
    ['output "z"', 'no node produces'], 'an output nobody computes');

  // Subgraphs nested 200 deep (If inside If ...): refused by the decoder's depth limit.
  // (written byte by byte: protobufjs' own encoder refuses such depth too)
  const text = (v: string): number[] => Array.from(Buffer.from(v));
  let graph: number[] = field(2, text('leaf'));
  for (let i = 0; i < 200; i++) {
    const attribute = [...field(1, text('then_branch')), 0xa0, 0x01, 5, ...field(6, graph)]; // name, type = GRAPH (field 20), g
    graph = field(1, [...field(4, text('If')), ...field(5, attribute)]); // GraphProto.node { op_type, attribute }
  }
  const deep = Uint8Array.from([0x08, 0x07, ...field(7, graph)]);
  throwsModelError(t, () => importOnnx(deep, 'deep.onnx'), ['deep.onnx', 'byte offset', 'nested'], 'messages nested 200 deep');
});

t.test('operators Squall does not run', async (t) => {
  const erf = throwsModelError(t, () => importOnnx(encodeModel([{ op: 'Erf', name: 'gelu_part', inputs: ['x'], outputs: ['y'] }]), 'erf.onnx'),
    ['erf.onnx', 'layer "gelu_part"', 'type Erf'], 'an unknown operator', UnsupportedLayerError);
  t.equal((erf as UnsupportedLayerError | null)?.layerType, 'Erf', 'the error carries the op type');
  throwsModelError(t, () => importOnnx(encodeModel([{ op: 'FusedConv', domain: 'com.microsoft', name: 'fc', inputs: ['x'], outputs: ['y'] }]), 'ms.onnx'),
    ['layer "fc"', 'type com.microsoft.FusedConv'], 'an operator of another domain', UnsupportedLayerError);
  throwsModelError(t, () => importOnnx(encodeModel([{ op: 'Div', name: 'half', inputs: ['x', 'x'], outputs: ['y'] }]), 'div.onnx'),
    ['layer "half"', 'type Div'], 'a Div that is not part of an LRN', UnsupportedLayerError);
  throwsModelError(t, () => importOnnx(encodeModel([{ op: 'MaxPool', name: 'p', inputs: ['x'], outputs: ['y'], attribute: [{ name: 'kernel_shape', type: INTS, ints: [2] }] }]), 'pool1d.onnx'),
    ['layer "p"', 'type MaxPool', '1-d window'], 'a 1-d pooling', UnsupportedLayerError);

  // A residual connection imports (add is a layer op) but the module builder names it as what Squall cannot build.
  const residual = importOnnx(encodeModel([
    { op: 'Relu', name: 'branch', inputs: ['x'], outputs: ['r'] },
    { op: 'Add', name: 'skip', inputs: ['x', 'r'], outputs: ['y'] },
  ]), 'residual.onnx');
  throwsModelError(t, () => buildModule(residual), ['residual.onnx', 'node "skip" (Add)', 'residual'], 'a residual Add');
});
