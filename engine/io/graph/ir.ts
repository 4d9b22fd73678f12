// The layer graph every importer produces (Caffe, Torch7 where convenient, ONNX) and that
// one builder (build.ts) turns into Squall modules. Importers only translate their file's
// vocabulary into these layers; they never construct nn modules themselves, so the
// mapping rules (Caffe's ceil pooling, ONNX's LRN pattern, weight layouts) live in the
// importer and the module construction, weight copying and graph decomposition in one place.
//
// Values are named tensors; every node reads `inputs` and writes one `output`. Shapes are
// NCHW with the batch dimension first. Weights are float32 in Squall's layouts:
//   conv   weight [outC, inC / groups, kH, kW], bias [outC]
//   linear weight [outFeatures, inFeatures] (y = x W^T + b), bias [outFeatures]
//   batchnorm mean/variance/scale/shift [features]
// A weight given as null means "initialise" (a prototxt without a caffemodel).

export type LayerSpec =
  | {
      op: 'conv'; inC: number; outC: number; kW: number; kH: number; strideW: number; strideH: number;
      padW: number; padH: number; groups: number; dilationW: number; dilationH: number; hasBias: boolean;
      weight: Float32Array | null; bias: Float32Array | null;
    }
  /** A >2-d input is flattened from dimension 1 first (Caffe's InnerProduct); build.ts inserts the View. */
  | { op: 'linear'; inFeatures: number; outFeatures: number; hasBias: boolean; weight: Float32Array | null; bias: Float32Array | null }
  | { op: 'relu'; negativeSlope: number }
  | { op: 'tanh' }
  | { op: 'sigmoid' }
  | {
      op: 'maxpool' | 'avgpool'; kW: number; kH: number; strideW: number; strideH: number; padW: number; padH: number;
      /** Output size rounded up (Caffe's default, Torch's :ceil(), ONNX ceil_mode=1). */
      ceil: boolean;
      /** Pool over the whole plane (Caffe global_pooling, ONNX GlobalAveragePool): k = input size. */
      global: boolean;
      /** Average pooling: divide by the full window including padding (Torch/Caffe) or only the valid part (ONNX count_include_pad=0). */
      countIncludePad: boolean;
    }
  | { op: 'lrn'; size: number; alpha: number; beta: number; k: number }
  /** Concatenation of the inputs along `dim` (NCHW, batch = 0); a negative dim counts from the end (ONNX's axis). */
  | { op: 'concat'; dim: number }
  /**
   * Element-wise sum of the inputs (Caffe Eltwise SUM, ONNX Add/Sum of computed tensors: a
   * residual connection). Squall has no module for it; build.ts names such a node as the
   * reason a graph cannot be built (it is not a chain of Sequentials and Concats).
   */
  | { op: 'add' }
  | { op: 'dropout'; p: number }
  | { op: 'softmax' | 'logsoftmax' }
  /** momentum in PyTorch's convention (running = (1 - m) * running + m * batch; ONNX's is 1 - m). */
  | {
      op: 'batchnorm'; features: number; eps: number; momentum: number; affine: boolean;
      mean: Float32Array | null; variance: Float32Array | null; scale: Float32Array | null; shift: Float32Array | null;
    }
  /** Keep the batch dimension, flatten the rest (ONNX Flatten axis=1, Caffe Flatten, Torch View(-1)). */
  | { op: 'flatten' }
  /** Per-sample shape after the batch dimension; one entry may be -1. */
  | { op: 'reshape'; shape: number[] };

export type LayerOp = LayerSpec['op'];

export interface GraphNode {
  /** The layer's or node's name in its file (for errors and module names). */
  name: string;
  /** The file's own type of it ("Convolution", "Conv", "nn.SpatialConvolutionMM"), for errors. */
  sourceType: string;
  layer: LayerSpec;
  inputs: string[];
  output: string;
}

export interface GraphInput {
  name: string;
  /** Per-sample shape (without the batch dimension) when the file declares it. */
  shape: number[] | null;
}

export interface LayerGraph {
  /** The file it came from, for errors. */
  source: string;
  /** Format name for messages: 'caffe' | 'onnx' | 'torch7' | 'squall'. */
  format: string;
  inputs: GraphInput[];
  /** In topological order (importers sort; build.ts checks). */
  nodes: GraphNode[];
  outputs: string[];
}
