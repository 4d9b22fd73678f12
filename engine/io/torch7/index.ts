// The Torch7 importer: a model saved with torch.save (binary) as a LayerGraph with its
// trained weights.
import type { LayerGraph } from '../graph/ir.js';
import { readModelFile } from '../model-file.js';
import { readTorch7 } from './deserialize.js';
import { torch7ModelToGraph } from './modules-to-graph.js';
import { looksLikeTorch7 } from './sniff.js';

export { looksLikeTorch7 };

/** The graph of a file already in memory (`file` names it in errors). */
export function parseTorch7(bytes: Uint8Array, file: string): LayerGraph {
  return torch7ModelToGraph(readTorch7(bytes, file), file, bytes.length);
}

export async function loadTorch7(path: string): Promise<LayerGraph> {
  return parseTorch7(await readModelFile(path), path);
}
