// The benchmark models by name, with their input shape, classes and benchmark batch size
// (the table of ../shared/peers/models.py).
import type { Sequential } from '../nn/index.js';
import { inceptionV1 } from './inception-v1.js';
import { lenet5 } from './lenet5.js';
import { vgg16 } from './vgg16.js';
import { vggCifar } from './vgg-cifar.js';

export { inceptionV1, inceptionBlock } from './inception-v1.js';
export { lenet5 } from './lenet5.js';
export { vgg16 } from './vgg16.js';
export { vggCifar } from './vgg-cifar.js';

export interface ModelSpec {
  name: string;
  build: (classes?: number) => Sequential;
  /** [channels, height, width] of one sample. */
  input: [number, number, number];
  classes: number;
  batch: number;
}

export const MODELS: Record<string, ModelSpec> = {
  lenet5: { name: 'lenet5', build: (c = 10) => lenet5(c), input: [1, 28, 28], classes: 10, batch: 128 },
  vgg_cifar: { name: 'vgg_cifar', build: (c = 10) => vggCifar(c), input: [3, 32, 32], classes: 10, batch: 32 },
  inception_v1: { name: 'inception_v1', build: (c = 1000) => inceptionV1(c), input: [3, 224, 224], classes: 1000, batch: 8 },
  vgg16: { name: 'vgg16', build: (c = 1000) => vgg16(c), input: [3, 224, 224], classes: 1000, batch: 4 },
};

export function modelSpec(name: string): ModelSpec {
  const spec = MODELS[name];
  if (!spec) throw new RangeError(`unknown model "${name}"; known: ${Object.keys(MODELS).join(', ')}`);
  return spec;
}
