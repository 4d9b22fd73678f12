// `squall predict --model FILE --input X`: runs a model file (any format loadModel reads)
// on inputs (predict-input.ts) in evaluation mode and prints, for the first samples, the
// top-K classes with their probabilities (or raw scores when the model does not end in a
// (log-)softmax), and the accuracy when the inputs come with labels.
import { isBackendName, loadBackend } from '../backends/registry.js';
import { loadModel } from '../io/index.js';
import { LogSoftMax, Sequential, SoftMax, type Module } from '../nn/index.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import { UsageError, optionsHelp, parseOptions, parseShape, type OptionSpec } from './args.js';
import { readPredictInput } from './predict-input.js';

export const predictOptions: Record<string, OptionSpec> = {
  model: { type: 'string', help: 'the model file: ONNX, Caffe prototxt, Torch7 .t7 or Squall (recognised by content)' },
  weights: { type: 'string', help: 'the .caffemodel with the weights of a Caffe prototxt --model' },
  input: { type: 'string', help: 'FILE.npy (float32), a JSON array or FILE.json, or fashion-mnist:test[:N]' },
  top: { type: 'int', help: 'classes printed per sample', default: 5 },
  show: { type: 'int', help: 'samples whose top classes are printed', default: 5 },
  backend: { type: 'string', help: 'native | wasm', default: 'native' },
  batch: { type: 'int', help: 'samples per forward pass', default: 100 },
  'input-shape': { type: 'string', help: 'per-sample input shape C,H,W, when the model file does not declare it' },
};

export const predictUsage = `usage: squall predict --model FILE --input X [options]

Runs the model on the inputs in evaluation mode and prints the top classes of the first
samples, and the accuracy when the inputs are labelled (fashion-mnist:test[:N]: the first N
test images, normalised as squall train does).

${optionsHelp(predictOptions)}`;

export async function predictCommand(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log(predictUsage);
    return 0;
  }
  const command = 'squall predict';
  const o = parseOptions(command, args, predictOptions);
  for (const required of ['model', 'input']) {
    if (o[required] === undefined) throw new UsageError(`${command}: --${required} is required\n\n${predictUsage}`);
  }
  const top = o.top as number;
  const show = o.show as number;
  const batch = o.batch as number;
  if (top < 1) throw new UsageError(`${command}: --top must be at least 1, got ${top}`);
  if (show < 0) throw new UsageError(`${command}: --show must be 0 or more, got ${show}`);
  if (batch < 1) throw new UsageError(`${command}: --batch must be at least 1, got ${batch}`);
  const backendName = String(o.backend);
  if (!isBackendName(backendName)) throw new UsageError(`${command}: --backend must be native or wasm, got '${backendName}'`);
  const inputShape = o['input-shape'] !== undefined ? parseShape(command, 'input-shape', String(o['input-shape'])) : undefined;

  const loaded = await loadModel(String(o.model), {
    ...(o.weights !== undefined ? { weights: String(o.weights) } : {}), ...(inputShape ? { inputShape } : {}),
  });
  const input = readPredictInput(command, String(o.input), loaded.inputShape);
  const model = loaded.model;
  let classes: number;
  try {
    const out = model.outputShape([1, ...input.sample]);
    if (out.length !== 2) throw new Error(`it gives ${formatShape(out.slice(1))} per sample, not a vector of class scores`);
    classes = out[1]!;
  } catch (err) {
    throw new UsageError(`${command}: the model does not take ${input.what} (samples of ${formatShape(input.sample)}): ${(err as Error).message}`);
  }
  const backend = loadBackend(backendName);
  model.to(backend).evaluate();
  console.error(`${command}: ${String(o.model)} (${loaded.format}, ${model.parameterCount()} parameters) on ${backend.name}, ` +
    `${input.what}, samples of ${input.sample.join('x')}`);

  const scores = new Float32Array(input.count * classes);
  const per = input.sample.reduce((a, b) => a * b, 1);
  for (let start = 0; start < input.count; start += batch) {
    const n = Math.min(batch, input.count - start);
    const x = new Tensor([n, ...input.sample], input.data.subarray(start * per, (start + n) * per));
    const y = await model.forward(x);
    scores.set(y.data.subarray(0, n * classes), start * classes);
  }
  model.dispose();

  const probability = probabilityOf(model);
  let correct = 0;
  for (let i = 0; i < input.count; i++) {
    const row = scores.subarray(i * classes, (i + 1) * classes);
    const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
    if (input.labels && order[0] === input.labels[i]) correct++;
    if (i >= show) continue;
    const label = input.labels ? ` (label ${describeClass(input.labels[i]!, input.classNames)})` : '';
    const ranked = order.slice(0, top).map((c) => `${describeClass(c, input.classNames)} ${probability ? `p=${probability(row[c]!).toFixed(4)}` : `score ${row[c]!.toPrecision(5)}`}`);
    console.log(`sample ${i}${label}: ${ranked.join(', ')}`);
  }
  if (input.labels) console.log(`accuracy ${(100 * correct / input.count).toFixed(2)}% (${correct} of ${input.count}, ${input.what})`);
  return 0;
}

function describeClass(c: number, names: readonly string[] | null): string {
  return names?.[c] !== undefined ? `${c} ${names[c]}` : String(c);
}

/** How to read the outputs as probabilities, from the model's last layer; null for raw scores. */
function probabilityOf(model: Module): ((v: number) => number) | null {
  let last: Module = model;
  while (last instanceof Sequential && last.length > 0) last = last.get(last.length - 1);
  if (last instanceof LogSoftMax) return Math.exp;
  if (last instanceof SoftMax) return (v) => v;
  return null;
}
