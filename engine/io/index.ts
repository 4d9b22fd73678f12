// engine/io: reading and writing models.
//
//   const { model, inputShape } = await loadModel('net.onnx');          // or .squall, .prototxt (+ weights), .t7
//   await saveModel('net.squall', model, { inputShape });               // Squall's format, with the architecture
//   await saveOnnx('net.onnx', model, { inputShape: [1, 28, 28] });
//
// Importers produce a LayerGraph (graph/ir.ts) that buildModule turns into modules; every
// problem with a file is a ModelFormatError (UnsupportedLayerError for a layer Squall
// cannot run) naming the file and where in it.
export { loadModel, saveModel, detectModelFormat } from './load.js';
export type { LoadModelOptions, LoadedModel, ModelFormat, SaveModelOptions } from './load.js';
export { saveOnnx, encodeOnnx, importOnnx, loadOnnx, looksLikeOnnx, type SaveOnnxOptions } from './onnx/index.js';
export { buildModule, graphInputShape, type BuildOptions } from './graph/build.js';
export type { GraphInput, GraphNode, LayerGraph, LayerOp, LayerSpec } from './graph/ir.js';
export { ModelFormatError, UnsupportedLayerError } from './errors.js';
export { buildArchitecture, describeArchitecture, type ArchitectureNode } from './architecture.js';
export { CheckpointFormatError, CheckpointMismatchError } from './checkpoint/index.js';
