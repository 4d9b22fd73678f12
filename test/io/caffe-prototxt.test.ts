// The prototxt reader: the protobuf text format's syntax (every element of it), typing
// against the Caffe schema (numbers, enums, booleans, strings, nested and repeated
// messages, proto2 defaults), and errors at the exact line:column of the fault.
import t from 'tap';
import { ModelFormatError } from '../../engine/io/errors.js';
import { parseNetPrototxt } from '../../engine/io/caffe/read-net.js';
import { parsePrototxt, type TextField, type TextMessage } from '../../engine/io/caffe/prototxt-parser.js';
import { caffeType } from '../../engine/io/caffe/schema.js';
import { typeTextMessage } from '../../engine/io/caffe/text-message.js';
import type { Tap } from '../conformance/util.js';

const FILE = 'test.prototxt';

/** The parse error of `text` (typed as `type` when given), or a failed assertion when it parses. */
function errorOf(t: Tap, text: string, type?: string): ModelFormatError | null {
  try {
    const tree = parsePrototxt(text, FILE);
    if (type) typeTextMessage(tree, caffeType(type), FILE);
  } catch (err) {
    t.ok(err instanceof ModelFormatError, `a ModelFormatError: ${(err as Error).message}`);
    if (!(err instanceof ModelFormatError)) return null;
    t.equal(err.file, FILE, 'names the file');
    return err;
  }
  t.fail(`${JSON.stringify(text)} parsed, an error was expected`);
  return null;
}

function expectError(t: Tap, text: string, where: string, mentions: RegExp, type?: string): void {
  const err = errorOf(t, text, type);
  if (!err) return;
  t.equal(err.where, where, `${JSON.stringify(text.length > 50 ? `${text.slice(0, 50)}...` : text)}: at ${where}`);
  t.match(err.detail, mentions, `says what is wrong: ${err.detail}`);
}

/** A field's scalar token text (for syntax tests that do not type the tree). */
function scalar(f: TextField | undefined): string {
  if (!f || f.value.kind !== 'scalar') throw new Error(`not a scalar field: ${JSON.stringify(f)}`);
  return `${f.value.negative ? '-' : ''}${f.value.token.text}`;
}

t.test('syntax', async (t) => {
  t.test('comments, separators and field positions', async (t) => {
    const m = parsePrototxt('# header comment\nname: "x" # trailing\n\n  a: 1, b: 2; c: 3\n#end', FILE);
    t.same(m.fields.map((f) => [f.name, scalar(f), f.line, f.column]), [['name', 'x', 2, 1], ['a', '1', 4, 3], ['b', '2', 4, 9], ['c', '3', 4, 15]],
      'fields with their 1-based line and column; "#" comments and "," / ";" separators skipped');
  });

  t.test('strings', async (t) => {
    const m = parsePrototxt(String.raw`a: "tab\tnl\nq\"s\'bs\\" b: 'single "quoted"' c: "\x41\101\u00e9\U0001F600" d: "con" 'cat' "enated" e: "\?\a\b\f\v\r" f: "\303\251"`, FILE);
    t.same(m.fields.map(scalar), ['tab\tnl\nq"s\'bs\\', 'single "quoted"', 'AAé😀', 'concatenated', '?\x07\b\f\v\r', 'é'],
      'escapes (simple, hex, octal, \\u, \\U), single quotes, adjacent strings concatenated, octal bytes decoded as UTF-8');
    t.equal(m.fields[0]!.value.kind === 'scalar' && m.fields[0]!.value.token.kind, 'string', 'a string token');
  });

  t.test('numbers and identifiers', async (t) => {
    const m = parsePrototxt('a: 42 b: -7 c: 1e-4 d: 1.5E+3 e: .5 f: 5. g: 2.5f h: 0x1F i: -inf j: nan k: true l: MAX', FILE);
    t.same(m.fields.map(scalar), ['42', '-7', '1e-4', '1.5E+3', '.5', '5.', '2.5f', '0x1F', '-inf', 'nan', 'true', 'MAX'],
      'integers, negatives, exponents, leading/trailing dots, the f suffix, hex, inf/nan, booleans, enum names');
  });

  t.test('messages and lists', async (t) => {
    const m = parsePrototxt('a { x: 1 } b: { x: 2 } c < x: 3 > d: [1, 2, 3] e [ { x: 4 }, { x: 5 } ] f: [] g { }', FILE);
    const inner = (f: TextField): string[] => (f.value as TextMessage).fields.map(scalar);
    t.same(m.fields.map((f) => f.name), ['a', 'b', 'c', 'd', 'd', 'd', 'e', 'e', 'g'], 'a list is the field repeated; [] adds nothing');
    t.same([m.fields[0]!, m.fields[1]!, m.fields[2]!].map(inner), [['1'], ['2'], ['3']], 'a message with or without ":" and with <> delimiters');
    t.same(m.fields.slice(3, 6).map(scalar), ['1', '2', '3'], 'a list of scalars');
    t.same(m.fields.slice(6, 8).map(inner), [['4'], ['5']], 'a list of messages');
    t.same((m.fields[8]!.value as TextMessage).fields, [], 'an empty message');
  });
});

t.test('typing against the Caffe schema', async (t) => {
  const net = parseNetPrototxt(`
    name: 'typed' input: "data" input_dim: 1 input_dim: 3 input_dim: [8, 8]
    layer {
      name: "c" type: "Convolution" bottom: "data" top: "c"
      param { lr_mult: 1 decay_mult: 1 }              # not in the schema subset: skipped
      convolution_param { num_output: 0x10 kernel_size: [3, 5] pad_h: 1 pad_w: 2 bias_term: false
                          weight_filler { type: "gaussian" std: 0.01 } }
    }
    layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: 1 kernel_size: 2 } }
    layer { name: "l" type: "LRN" bottom: "p" top: "l" lrn_param { alpha: 1e-4 beta: .75 } }
    layer { name: "r" type: "ReLU" bottom: "l" top: "l" relu_param { negative_slope: -inf } include: { phase: TEST } }
    layer { name: "d" type: "Dropout" bottom: "l" top: "l" }
    layers { name: "v1" type: INNER_PRODUCT bottom: "l" top: "v1" inner_product_param { num_output: 4 transpose: t } }
  `, FILE);
  t.equal(net.name, 'typed', 'a single-quoted string');
  t.same(net.input_dim, [1, 3, 8, 8], 'repeated integers given one by one and as a list');
  const [c, p, l, r, d] = net.layer;
  t.same(c!.convolution_param, {
    num_output: 16, kernel_size: [3, 5], pad_h: 1, pad_w: 2, bias_term: false, pad: [], stride: [], dilation: [], group: 1, axis: 1,
  }, 'a hexadecimal integer, a repeated field as a list, booleans; proto2 defaults filled in; unknown fields (weight_filler) skipped');
  t.equal(c!.convolution_param!.kernel_h, undefined, 'an optional field without a default stays absent');
  t.equal(p!.pooling_param!.pool, 'AVE', 'an enum given by number becomes its name');
  t.equal(p!.pooling_param!.round_mode, 'CEIL', 'an enum default');
  t.equal(l!.lrn_param!.alpha, Math.fround(1e-4), 'a float field holds the float32 value');
  t.same([l!.lrn_param!.local_size, l!.lrn_param!.k, l!.lrn_param!.norm_region], [5, 1, 'ACROSS_CHANNELS'], 'LRN defaults');
  t.equal(r!.relu_param!.negative_slope, -Infinity, '-inf');
  t.same(r!.include, [{ phase: 'TEST', stage: [], not_stage: [] }], 'a message given with ":"');
  t.equal(d!.dropout_param, null, 'an absent message is null');
  t.same([net.layers[0]!.type, net.layers[0]!.inner_product_param!.transpose], ['INNER_PRODUCT', true], 'V1 enum type; "t" is true');
});

t.test('syntax errors at their line:column', async (t) => {
  expectError(t, 'name: "abc', 'line 1:7', /unterminated string/);
  expectError(t, 'a: 1\nb: "x\ny"', 'line 2:4', /unterminated string/);
  expectError(t, 'name: "a\\qb"', 'line 1:9', /unknown escape \\q/);
  expectError(t, 'name: "\\400"', 'line 1:8', /octal escape/);
  expectError(t, 'name: "\\u12"', 'line 1:8', /\\u escape needs 4/);
  expectError(t, 'layer {\n  name: "a"\n', 'line 3:1', /expected '}'.*end of the file/);
  expectError(t, 'layer { name: "a" }\n}', 'line 2:1', /expected a field name, found "}"/);
  expectError(t, '  x: @', 'line 1:6', /unexpected character "@"/);
  expectError(t, 'x: 12abc', 'line 1:4', /malformed number "12abc"/);
  expectError(t, 'x: 1e+', 'line 1:4', /exponent without digits/);
  expectError(t, 'x: 0x', 'line 1:4', /hexadecimal number without digits/);
  expectError(t, 'x 5', 'line 1:3', /expected ':' or '\{' after the field name "x"/);
  expectError(t, 'x: - "s"', 'line 1:4', /'-' must be followed by a number/);
  expectError(t, 'x: [1, 2', 'line 1:9', /expected ',' or '\]'/);
  expectError(t, 'x [1]', 'line 1:4', /expected ':' after "x" before a list/);
  expectError(t, 'x: }', 'line 1:4', /expected a value, found "}"/);
  expectError(t, '[caffe.ext]: 1', 'line 1:1', /extension/);
  expectError(t, `${'a { '.repeat(65)}${'} '.repeat(65)}`, 'line 1:259', /nested more than 64 deep/);
  expectError(t, `name: "x"\ndim: [${'7,'.repeat(500_000)}7]`, 'line 2:1', /more than 500000 fields/);
});

t.test('type errors at their line:column', async (t) => {
  const net = (body: string): string => `layer {\n  name: "x"\n  ${body}\n}`;
  expectError(t, net('convolution_param { num_output: 1.5 }'), 'line 3:35', /num_output expects an integer \(uint32\), found "1\.5"/, 'NetParameter');
  expectError(t, net('convolution_param { num_output: -1 }'), 'line 3:35', /out of the range of uint32/, 'NetParameter');
  expectError(t, net('convolution_param { axis: 3000000000 }'), 'line 3:29', /out of the range of int32/, 'NetParameter');
  expectError(t, net('pooling_param { pool: MEAN }'), 'line 3:25', /pool expects one of PoolMethod \(MAX, AVE, STOCHASTIC\), found "MEAN"/, 'NetParameter');
  expectError(t, net('pooling_param { pool: 7 }'), 'line 3:25', /one of PoolMethod/, 'NetParameter');
  expectError(t, net('name: "y"'), 'line 3:3', /LayerParameter\.name is not repeated but is given more than once/, 'NetParameter');
  expectError(t, net('convolution_param: 3'), 'line 3:22', /is a message \(ConvolutionParameter\)/, 'NetParameter');
  expectError(t, net('type { }'), 'line 3:8', /LayerParameter\.type is a string, not a message/, 'NetParameter');
  expectError(t, net('type: Convolution'), 'line 3:9', /expects a quoted string, found "Convolution"/, 'NetParameter');
  expectError(t, net('convolution_param { bias_term: yes }'), 'line 3:34', /expects true or false/, 'NetParameter');
  expectError(t, net('lrn_param { alpha: "big" }'), 'line 3:22', /alpha expects a number, found the string "big"/, 'NetParameter');
});
