// The plain objects the importer works with: the prototxt's net as text-message.ts types it
// (the same objects protobufjs's toObject would give for a binary NetParameter): snake_case field names,
// enums as their names, int64 as numbers, repeated fields as arrays (empty when absent),
// absent messages as null, absent scalars with a proto2 default as that default, and
// absent scalars without one left undefined (so "not given" stays visible, as Caffe's
// has_kernel_h() does).
export interface BlobShapeMsg {
  dim: number[];
}

export interface NetStateRuleMsg {
  phase?: string;
  min_level?: number;
  max_level?: number;
  stage: string[];
  not_stage: string[];
}

export interface ConvolutionMsg {
  num_output?: number;
  bias_term: boolean;
  pad: number[];
  kernel_size: number[];
  stride: number[];
  dilation: number[];
  pad_h: number;
  pad_w: number;
  kernel_h?: number;
  kernel_w?: number;
  stride_h?: number;
  stride_w?: number;
  group: number;
  axis: number;
}

export interface PoolingMsg {
  pool: string;
  pad: number;
  pad_h: number;
  pad_w: number;
  kernel_size?: number;
  kernel_h?: number;
  kernel_w?: number;
  stride: number;
  stride_h?: number;
  stride_w?: number;
  global_pooling: boolean;
  round_mode: string;
}

export interface InnerProductMsg {
  num_output?: number;
  bias_term: boolean;
  axis: number;
  transpose: boolean;
}

export interface LrnMsg {
  local_size: number;
  alpha: number;
  beta: number;
  norm_region: string;
  k: number;
}

export interface LayerParams {
  batch_norm_param: { use_global_stats?: boolean; moving_average_fraction: number; eps: number } | null;
  concat_param: { axis: number; concat_dim: number } | null;
  convolution_param: ConvolutionMsg | null;
  dropout_param: { dropout_ratio: number } | null;
  flatten_param: { axis: number; end_axis: number } | null;
  inner_product_param: InnerProductMsg | null;
  input_param: { shape: BlobShapeMsg[] } | null;
  lrn_param: LrnMsg | null;
  pooling_param: PoolingMsg | null;
  relu_param: { negative_slope: number } | null;
  reshape_param: { shape: BlobShapeMsg | null; axis: number; num_axes: number } | null;
  scale_param: { axis: number; num_axes: number; bias_term: boolean } | null;
  softmax_param: { axis: number } | null;
}

/** A V2 `layer` (or a V1 `layers` entry once normalised by net.ts). */
export interface LayerMsg extends Partial<LayerParams> {
  name: string;
  type: string;
  bottom: string[];
  top: string[];
  include: NetStateRuleMsg[];
  exclude: NetStateRuleMsg[];
}

/** A legacy V1 `layers` entry: the same fields, its type an enum name such as CONVOLUTION. */
export type V1LayerMsg = LayerMsg;

/** A layer of the caffemodel (WeightsLayer / WeightsV1Layer): its blobs still encoded, decoded when matched. */
export interface TrainedLayer {
  name: string;
  blobs: Uint8Array[];
}

export interface NetMsg {
  name: string;
  input: string[];
  input_shape: BlobShapeMsg[];
  input_dim: number[];
  layer: LayerMsg[];
  layers: V1LayerMsg[];
}
