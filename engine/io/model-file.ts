// Reading a model file whole: every importer's first step, with the one error for a file
// that cannot be read (missing, a directory, no permission) naming it.
import { readFile } from 'node:fs/promises';
import { ModelFormatError } from './errors.js';

/** A whole model file's bytes; a file that cannot be read is a ModelFormatError naming it. */
export async function readModelFile(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    throw new ModelFormatError(path, 'file', `cannot be read: ${(err as Error).message}`);
  }
}
