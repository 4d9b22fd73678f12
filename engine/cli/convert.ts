// `squall convert IN OUT`: any model file Squall reads (ONNX, Caffe, Torch7, Squall's own;
// recognised by content) to a Squall model file or an ONNX model, by OUT's extension.
import { extname } from 'node:path';
import { loadModel, saveModel, saveOnnx } from '../io/index.js';
import { UsageError, optionsHelp, parseOptions, parseShape, splitPositional, type OptionSpec } from './args.js';

export const convertOptions: Record<string, OptionSpec> = {
  weights: { type: 'string', help: 'the .caffemodel with the weights of a Caffe prototxt IN' },
  'input-shape': { type: 'string', help: 'per-sample input shape C,H,W, when IN does not declare it (Torch7, some prototxts)' },
};

/** Output extensions and the format each writes. */
const TARGETS: Record<string, 'squall' | 'onnx'> = { '.squall': 'squall', '.sqm': 'squall', '.onnx': 'onnx' };

export const convertUsage = `usage: squall convert IN OUT [options]

Reads the model IN: ONNX, a Caffe prototxt (its weights with --weights NET.caffemodel), a
Torch7 .t7 file or a Squall model file, recognised by content whatever its name, and writes
OUT as a Squall model file (.squall, .sqm: weights and architecture) or an ONNX model (.onnx,
opset 13), chosen by OUT's extension.

${optionsHelp(convertOptions)}`;

export async function convertCommand(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log(convertUsage);
    return 0;
  }
  const command = 'squall convert';
  const { positional, options } = splitPositional(args, convertOptions);
  const o = parseOptions(command, options, convertOptions);
  if (positional.length !== 2) {
    throw new UsageError(`${command}: give the input and the output file (got ${positional.length} file argument${positional.length === 1 ? '' : 's'})\n\n${convertUsage}`);
  }
  const [input, output] = positional as [string, string];
  const target = TARGETS[extname(output).toLowerCase()];
  if (!target) throw new UsageError(`${command}: cannot tell the output format from '${output}': name it .squall (Squall) or .onnx (ONNX)`);
  const inputShape = o['input-shape'] !== undefined ? parseShape(command, 'input-shape', String(o['input-shape'])) : undefined;
  const loaded = await loadModel(input, {
    ...(o.weights !== undefined ? { weights: String(o.weights) } : {}), ...(inputShape ? { inputShape } : {}),
  });
  const shape = loaded.inputShape;
  let bytes: number;
  if (target === 'onnx') {
    if (!shape) throw new UsageError(`${command}: ${input} does not declare its input shape, which ONNX needs: give --input-shape C,H,W`);
    bytes = (await saveOnnx(output, loaded.model, { inputShape: shape })).bytes;
  } else {
    bytes = (await saveModel(output, loaded.model, { ...(shape ? { inputShape: shape } : {}), meta: { convertedFrom: loaded.format } })).bytes;
  }
  console.log(`${command}: ${input} (${loaded.format}, ${loaded.model.parameterCount()} parameters` +
    `${shape ? `, input ${shape.join('x')}` : ''}) -> ${output} (${target}, ${bytes} bytes)`);
  return 0;
}
