// LeNet-5 as BigDL's models/lenet/LeNet5 and ../shared/peers/models.py: 1x28x28 input,
// conv 1->6 5x5, tanh, maxpool 2, tanh, conv 6->12 5x5, maxpool 2, view 192,
// linear 192->100, tanh, linear 100->classes, log-softmax.
import { LogSoftMax, Linear, Sequential, SpatialConvolution, SpatialMaxPooling, Tanh, View } from '../nn/index.js';

export function lenet5(classes = 10): Sequential {
  return new Sequential(
    new SpatialConvolution(1, 6, 5, 5),
    new Tanh(),
    new SpatialMaxPooling(2, 2, 2, 2),
    new Tanh(),
    new SpatialConvolution(6, 12, 5, 5),
    new SpatialMaxPooling(2, 2, 2, 2),
    new View(12 * 4 * 4),
    new Linear(12 * 4 * 4, 100),
    new Tanh(),
    new Linear(100, classes),
    new LogSoftMax(),
  );
}
