// The layers of a net as one list in the V2 vocabulary: legacy V1 `layers` entries get
// their enum type turned into the V2 type name (CONVOLUTION -> Convolution), and layers
// whose include/exclude rules leave them out of the TEST phase (data layers of the
// training net, losses, accuracy) are dropped, as Caffe does when it builds a net for
// inference.
import type { LayerMsg, NetMsg, NetStateRuleMsg } from './messages.js';

/** V1 LayerType names and the V2 type strings Caffe's upgrade gives them. */
const V1_TYPE_NAMES: Record<string, string> = {
  ABSVAL: 'AbsVal', ACCURACY: 'Accuracy', ARGMAX: 'ArgMax', BNLL: 'BNLL', CONCAT: 'Concat', CONTRASTIVE_LOSS: 'ContrastiveLoss',
  CONVOLUTION: 'Convolution', DATA: 'Data', DECONVOLUTION: 'Deconvolution', DROPOUT: 'Dropout', DUMMY_DATA: 'DummyData',
  EUCLIDEAN_LOSS: 'EuclideanLoss', ELTWISE: 'Eltwise', EXP: 'Exp', FLATTEN: 'Flatten', HDF5_DATA: 'HDF5Data',
  HDF5_OUTPUT: 'HDF5Output', HINGE_LOSS: 'HingeLoss', IM2COL: 'Im2col', IMAGE_DATA: 'ImageData', INFOGAIN_LOSS: 'InfogainLoss',
  INNER_PRODUCT: 'InnerProduct', LRN: 'LRN', MEMORY_DATA: 'MemoryData', MULTINOMIAL_LOGISTIC_LOSS: 'MultinomialLogisticLoss',
  MVN: 'MVN', POOLING: 'Pooling', POWER: 'Power', RELU: 'ReLU', SIGMOID: 'Sigmoid', SIGMOID_CROSS_ENTROPY_LOSS: 'SigmoidCrossEntropyLoss',
  SILENCE: 'Silence', SOFTMAX: 'Softmax', SOFTMAX_LOSS: 'SoftmaxWithLoss', SPLIT: 'Split', SLICE: 'Slice', TANH: 'TanH',
  WINDOW_DATA: 'WindowData', THRESHOLD: 'Threshold',
};

/** Whether a NetStateRule holds for the TEST phase at level 0 with no stages. */
function ruleHoldsForTest(rule: NetStateRuleMsg): boolean {
  if (rule.phase !== undefined && rule.phase !== 'TEST') return false;
  if (rule.min_level !== undefined && rule.min_level > 0) return false;
  if (rule.max_level !== undefined && rule.max_level < 0) return false;
  // a required stage is never present: the inference net has none
  return rule.stage.length === 0;
}

function inTestNet(layer: LayerMsg): boolean {
  if (layer.include.length > 0) return layer.include.some(ruleHoldsForTest);
  return !layer.exclude.some(ruleHoldsForTest);
}

/** Both layer lists of a net in the V2 vocabulary, in file order (a file uses one or the other). */
function allLayers(net: NetMsg): LayerMsg[] {
  const v1 = net.layers.map((l): LayerMsg => ({ ...l, type: V1_TYPE_NAMES[l.type] ?? String(l.type) }));
  return [...net.layer, ...v1];
}

/** The layers of the inference (TEST phase) net. */
export function testPhaseLayers(net: NetMsg): LayerMsg[] {
  return allLayers(net).filter(inTestNet);
}
