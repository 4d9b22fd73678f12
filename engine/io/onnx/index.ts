// engine/io/onnx: ONNX import (import.ts: file -> LayerGraph, built by graph/build.ts) and
// export (export.ts: module tree -> file), on a hand-written subset of onnx.proto (schema.ts).
export { importOnnx, loadOnnx } from './import.js';
export { encodeOnnx, saveOnnx, EXPORT_OPSET, type SaveOnnxOptions } from './export.js';
export { looksLikeOnnx } from './sniff.js';
