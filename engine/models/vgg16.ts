// VGG-16 for 224x224 inputs as BigDL's models/vgg/Vgg_16 (torchvision's layout without batch
// norm): 13 convs 3x3 pad 1 with ReLU, 5 max pools, linear 25088->4096->4096->classes with
// ReLU and dropout 0.5, log-softmax.
import { Dropout, LogSoftMax, Linear, ReLU, Sequential, SpatialConvolution, SpatialMaxPooling, View } from '../nn/index.js';

const LAYOUT: (number | 'M')[] = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'];

export function vgg16(classes = 1000, dropout = true): Sequential {
  const model = new Sequential();
  let inC = 3;
  for (const v of LAYOUT) {
    if (v === 'M') {
      model.add(new SpatialMaxPooling(2, 2, 2, 2));
      continue;
    }
    model.add(new SpatialConvolution(inC, v, 3, 3, 1, 1, 1, 1));
    model.add(new ReLU());
    inC = v;
  }
  model.add(new View(512 * 7 * 7));
  model.add(new Linear(512 * 7 * 7, 4096));
  model.add(new ReLU());
  if (dropout) model.add(new Dropout(0.5));
  model.add(new Linear(4096, 4096));
  model.add(new ReLU());
  if (dropout) model.add(new Dropout(0.5));
  model.add(new Linear(4096, classes));
  model.add(new LogSoftMax());
  return model;
}
