// Inception-v1 (GoogLeNet) without auxiliary classifiers, as BigDL's
// models/inception/Inception_v1_NoAuxClassifier and ../shared/peers/models.py: BVLC's
// layout with LRN and no batch norm, ceil-mode pools, global 7x7 average pool, dropout 0.4,
// linear 1024->classes, log-softmax. Input 3x224x224.
import {
  Concat, Dropout, LogSoftMax, Linear, ReLU, Sequential, SpatialAveragePooling, SpatialConvolution, SpatialCrossMapLRN,
  SpatialMaxPooling, View,
} from '../nn/index.js';

/** One inception block: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1, concatenated on channels. */
export function inceptionBlock(inC: number, c1: number, c3r: number, c3: number, c5r: number, c5: number, cp: number): Concat {
  return new Concat(1,
    new Sequential(new SpatialConvolution(inC, c1, 1, 1), new ReLU()),
    new Sequential(new SpatialConvolution(inC, c3r, 1, 1), new ReLU(), new SpatialConvolution(c3r, c3, 3, 3, 1, 1, 1, 1), new ReLU()),
    new Sequential(new SpatialConvolution(inC, c5r, 1, 1), new ReLU(), new SpatialConvolution(c5r, c5, 5, 5, 1, 1, 2, 2), new ReLU()),
    new Sequential(new SpatialMaxPooling(3, 3, 1, 1, 1, 1).ceil(), new SpatialConvolution(inC, cp, 1, 1), new ReLU()),
  );
}

export function inceptionV1(classes = 1000, dropout = true): Sequential {
  const pool = (): SpatialMaxPooling => new SpatialMaxPooling(3, 3, 2, 2).ceil();
  const model = new Sequential(
    new SpatialConvolution(3, 64, 7, 7, 2, 2, 3, 3), new ReLU(), pool(),
    new SpatialCrossMapLRN(5, 1e-4, 0.75),
    new SpatialConvolution(64, 64, 1, 1), new ReLU(),
    new SpatialConvolution(64, 192, 3, 3, 1, 1, 1, 1), new ReLU(),
    new SpatialCrossMapLRN(5, 1e-4, 0.75), pool(),
    inceptionBlock(192, 64, 96, 128, 16, 32, 32), inceptionBlock(256, 128, 128, 192, 32, 96, 64),
    pool(),
    inceptionBlock(480, 192, 96, 208, 16, 48, 64), inceptionBlock(512, 160, 112, 224, 24, 64, 64),
    inceptionBlock(512, 128, 128, 256, 24, 64, 64), inceptionBlock(512, 112, 144, 288, 32, 64, 64),
    inceptionBlock(528, 256, 160, 320, 32, 128, 128),
    pool(),
    inceptionBlock(832, 256, 160, 320, 32, 128, 128), inceptionBlock(832, 384, 192, 384, 48, 128, 128),
    new SpatialAveragePooling(7, 7, 1, 1),
  );
  if (dropout) model.add(new Dropout(0.4));
  model.add(new View(1024));
  model.add(new Linear(1024, classes));
  model.add(new LogSoftMax());
  return model;
}
