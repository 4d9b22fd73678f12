// What `squall predict --input X` reads:
//   fashion-mnist:test[:N]   the first N images of a Fashion-MNIST split (Debian's
//                            dataset-fashion-mnist), normalised with the training set's mean
//                            and standard deviation as `squall train` does; labels known
//   FILE.npy                 a float32 .npy array (recognised by its magic), [N, ...] or one sample
//   [..] or FILE.json        a JSON array of numbers, nested to the sample shape or flat per sample, [N, ...] or one sample
// The sample shape must be the model's input shape when that is known.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import {
  FASHION_MNIST_CLASSES, isNpy, loadFashionMnist, meanStd, normalise, parseNpy, sliceDataset, type FashionMnistSplit,
} from '../data/index.js';
import { formatShape, shapeSize } from '../tensor/tensor.js';
import { UsageError } from './args.js';

export interface PredictInput {
  /** [count, ...sample] values, row-major. */
  data: Float32Array;
  count: number;
  sample: number[];
  labels: Int32Array | null;
  classNames: readonly string[] | null;
  /** For messages: "fashion-mnist test (1000 images)", "x.npy". */
  what: string;
}

const FASHION = /^fashion-mnist(?::(train|test)(?::(\d+))?)?$/;

/** Largest JSON input file read (the data of a few hundred images); bigger inputs belong in .npy files. */
const MAX_JSON_BYTES = 64 << 20;

export function readPredictInput(command: string, spec: string, modelShape: number[] | null): PredictInput {
  if (spec.startsWith('fashion-mnist')) return fashionMnist(command, spec, modelShape);
  if (spec.trimStart().startsWith('[')) return fromJson(command, spec, 'the --input JSON', modelShape);
  if (!existsSync(spec)) {
    throw new UsageError(`${command}: --input '${spec}' is not a file, a JSON array or fashion-mnist:test[:N]`);
  }
  const st = statSync(spec);
  if (!st.isFile()) throw new UsageError(`${command}: --input '${spec}' is not a regular file`);
  const head = new Uint8Array(8);
  readHead(spec, head);
  if (isNpy(head)) {
    const a = parseNpy(readFileSync(spec), spec);
    return { ...fit(command, spec, a.shape, a.data, modelShape), labels: null, classNames: null, what: spec };
  }
  if (st.size > MAX_JSON_BYTES) throw new UsageError(`${command}: --input ${spec} is neither a .npy file nor a JSON file of at most 64 MiB`);
  const text = readFileSync(spec, 'utf8');
  if (!text.trimStart().startsWith('[')) {
    throw new UsageError(`${command}: --input ${spec} is neither a float32 .npy file (magic \\x93NUMPY) nor a JSON array`);
  }
  return fromJson(command, text, spec, modelShape);
}

/** The first bytes of a file. */
function readHead(path: string, into: Uint8Array): void {
  const fd = openSync(path, 'r');
  try {
    readSync(fd, into, 0, into.length, 0);
  } finally {
    closeSync(fd);
  }
}

function fashionMnist(command: string, spec: string, modelShape: number[] | null): PredictInput {
  const m = FASHION.exec(spec);
  if (!m || !m[1]) throw new UsageError(`${command}: --input '${spec}': write fashion-mnist:test or fashion-mnist:test:N (or train)`);
  const split = m[1] as FashionMnistSplit;
  if (modelShape && formatShape(modelShape) !== formatShape([1, 28, 28])) {
    throw new UsageError(`${command}: fashion-mnist images are 1x28x28, the model takes ${modelShape.join('x')}`);
  }
  const train = loadFashionMnist({ split: 'train' });
  const { mean, std } = meanStd(train);
  let ds = split === 'train' ? train : loadFashionMnist({ split });
  const n = m[2] === undefined ? ds.length : Number(m[2]);
  if (!(Number.isSafeInteger(n) && n >= 1 && n <= ds.length)) {
    throw new UsageError(`${command}: --input ${spec}: N must be 1 to ${ds.length} (the ${split} split's size)`);
  }
  ds = sliceDataset(ds, 0, n);
  normalise(ds, mean, std);
  return { data: ds.images, count: n, sample: [...ds.shape], labels: ds.labels, classNames: FASHION_MNIST_CLASSES, what: `fashion-mnist ${split} (${n} images)` };
}

function fromJson(command: string, text: string, what: string, modelShape: number[] | null): PredictInput {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${command}: ${what} is not valid JSON: ${(err as Error).message}`);
  }
  const shape: number[] = [];
  let level: unknown = value;
  while (Array.isArray(level)) {
    if (shape.length >= 8) throw new UsageError(`${command}: ${what} is nested more than 8 deep`);
    shape.push(level.length);
    level = level[0];
  }
  const values = (value as unknown[]).flat(shape.length);
  if (values.length !== shapeSize(shape) || values.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new UsageError(`${command}: ${what} must be a rectangular array of finite numbers (shape ${formatShape(shape)} from its first elements)`);
  }
  return { ...fit(command, what, shape, Float32Array.from(values as number[]), modelShape), labels: null, classNames: null, what };
}

/** [N, ...sample] from an array's shape: a batch of samples of the model's shape or flattened, or one sample (also flat). */
function fit(command: string, what: string, shape: number[], data: Float32Array, modelShape: number[] | null): { data: Float32Array; count: number; sample: number[] } {
  if (modelShape) {
    const per = shapeSize(modelShape);
    if (formatShape(shape) === formatShape(modelShape) || (shape.length === 1 && shape[0] === per)) return { data, count: 1, sample: modelShape };
    const batchOf = formatShape(shape.slice(1)) === formatShape(modelShape) || (shape.length === 2 && shape[1] === per);
    if (batchOf && shape[0]! >= 1) return { data, count: shape[0]!, sample: modelShape };
    throw new UsageError(`${command}: ${what} has shape ${formatShape(shape)}; the model takes samples of ${formatShape(modelShape)} ` +
      `(give [N, ${modelShape.join(', ')}] or one sample)`);
  }
  if (shape.length < 2 || shape[0]! < 1) {
    throw new UsageError(`${command}: ${what} has shape ${formatShape(shape)}; the model does not declare its input shape, so give [N, ...sample] or --input-shape`);
  }
  return { data, count: shape[0]!, sample: shape.slice(1) };
}
