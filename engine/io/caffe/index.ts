// The Caffe importer: a deploy prototxt (the net) and optionally its caffemodel (the
// trained blobs, matched to the prototxt's layers by name) as a LayerGraph. Without a
// caffemodel every weight is null, so the built model is initialised rather than trained.
import { ModelFormatError } from '../errors.js';
import type { LayerGraph } from '../graph/ir.js';
import { readModelFile } from '../model-file.js';
import { LayerBlobs } from './layer-blobs.js';
import { caffeNetToGraph } from './net-to-graph.js';
import { decodeCaffeModel, parseNetPrototxt } from './read-net.js';
import { looksLikeCaffeModel, looksLikePrototxt } from './sniff.js';

export { looksLikeCaffeModel, looksLikePrototxt };

export interface CaffeFiles {
  prototxt: { file: string; bytes: Uint8Array };
  caffemodel?: { file: string; bytes: Uint8Array };
}

/** The graph of files already in memory (`file` names them in errors). */
export function parseCaffe({ prototxt, caffemodel }: CaffeFiles): LayerGraph {
  const head = Buffer.from(prototxt.bytes.subarray(0, 4096)).toString('latin1');
  if (looksLikeCaffeModel(prototxt.bytes) && !looksLikePrototxt(head)) {
    throw new ModelFormatError(prototxt.file, 'byte offset 0', 'is a binary caffemodel, not a prototxt: give the prototxt (the net definition) first and the caffemodel second');
  }
  const net = parseNetPrototxt(new TextDecoder('utf-8').decode(prototxt.bytes), prototxt.file);
  const weights = caffemodel ? { ...caffemodel, layers: decodeCaffeModel(caffemodel.bytes, caffemodel.file) } : null;
  return caffeNetToGraph(net, new LayerBlobs(weights, caffemodel?.file ?? prototxt.file), prototxt.file);
}

export async function loadCaffe(prototxtPath: string, caffemodelPath?: string): Promise<LayerGraph> {
  const prototxt = { file: prototxtPath, bytes: await readModelFile(prototxtPath) };
  if (caffemodelPath === undefined) return parseCaffe({ prototxt });
  return parseCaffe({ prototxt, caffemodel: { file: caffemodelPath, bytes: await readModelFile(caffemodelPath) } });
}
