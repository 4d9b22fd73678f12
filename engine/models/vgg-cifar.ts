// VGG-16 for 32x32 inputs as BigDL's models/vgg/VggForCifar10 (Zagoruyko's cifar.torch):
// 13 x [conv 3x3 pad 1, batch norm (eps 1e-3), ReLU] with dropout between convs, ceil-mode
// max pools, then dropout, linear 512->512, batch norm, ReLU, dropout, linear 512->classes,
// log-softmax. Same layout as ../shared/peers/models.py's vgg_cifar.
import {
  BatchNormalization, Dropout, LogSoftMax, Linear, ReLU, Sequential, SpatialBatchNormalization, SpatialConvolution,
  SpatialMaxPooling, View,
} from '../nn/index.js';

type Block = [inC: number, outC: number, dropout: number | null] | 'M';

const LAYOUT: Block[] = [[3, 64, 0.3], [64, 64, null], 'M', [64, 128, 0.4], [128, 128, null], 'M',
  [128, 256, 0.4], [256, 256, 0.4], [256, 256, null], 'M',
  [256, 512, 0.4], [512, 512, 0.4], [512, 512, null], 'M',
  [512, 512, 0.4], [512, 512, 0.4], [512, 512, null], 'M'];

export function vggCifar(classes = 10, dropout = true): Sequential {
  const model = new Sequential();
  for (const b of LAYOUT) {
    if (b === 'M') {
      model.add(new SpatialMaxPooling(2, 2, 2, 2).ceil());
      continue;
    }
    const [inC, outC, p] = b;
    model.add(new SpatialConvolution(inC, outC, 3, 3, 1, 1, 1, 1));
    model.add(new SpatialBatchNormalization(outC, { eps: 1e-3 }));
    model.add(new ReLU());
    if (dropout && p !== null) model.add(new Dropout(p));
  }
  model.add(new View(512));
  if (dropout) model.add(new Dropout(0.5));
  model.add(new Linear(512, 512));
  model.add(new BatchNormalization(512));
  model.add(new ReLU());
  if (dropout) model.add(new Dropout(0.5));
  model.add(new Linear(512, classes));
  model.add(new LogSoftMax());
  return model;
}
