// The importers that live in their own folders (engine/io/caffe, engine/io/torch7), loaded
// on first use. They are imported dynamically, by a computed specifier, so that this module
// (and loadModel) compile and run whether or not a build includes them; a format whose
// module is absent is reported as unavailable rather than breaking every other format.
import type { LayerGraph } from './graph/ir.js';

export interface CaffeImporter {
  loadCaffe(prototxtPath: string, caffemodelPath?: string): Promise<LayerGraph>;
  looksLikePrototxt(text: string): boolean;
  looksLikeCaffeModel(bytes: Uint8Array): boolean;
}

export interface Torch7Importer {
  loadTorch7(path: string): Promise<LayerGraph>;
  looksLikeTorch7(bytes: Uint8Array): boolean;
}

/** What went wrong loading an importer, for messages. */
export const unavailable = new Map<string, string>();

async function optionalImport<T>(name: string, specifier: string, exports: readonly string[]): Promise<T | null> {
  try {
    const m = (await import(specifier)) as Record<string, unknown>;
    const missing = exports.filter((e) => typeof m[e] !== 'function');
    if (missing.length) {
      unavailable.set(name, `${specifier} does not export ${missing.join(', ')}`);
      return null;
    }
    return m as T;
  } catch (err) {
    // Only the importer's own module missing means "not in this build"; anything else (a
    // module it imports missing, an error while it loads) is a real failure.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' || !(err as Error).message.includes(specifier.slice(2))) throw err;
    unavailable.set(name, `this build of Squall has no ${name} importer (${specifier} is missing)`);
    return null;
  }
}

let caffe: Promise<CaffeImporter | null> | null = null;
let torch7: Promise<Torch7Importer | null> | null = null;

export function caffeImporter(): Promise<CaffeImporter | null> {
  caffe ??= optionalImport<CaffeImporter>('Caffe', './caffe/index.js', ['loadCaffe', 'looksLikePrototxt', 'looksLikeCaffeModel']);
  return caffe;
}

export function torch7Importer(): Promise<Torch7Importer | null> {
  torch7 ??= optionalImport<Torch7Importer>('Torch7', './torch7/index.js', ['loadTorch7', 'looksLikeTorch7']);
  return torch7;
}
