// Assertions on the importers' errors, shared by the ONNX, build and loadModel tests: the
// error is a ModelFormatError (or the given subclass) and its message holds every part
// (the file, the offset or node, the reason).
import { ModelFormatError } from '../../engine/io/index.js';
import type { Tap } from '../conformance/util.js';

export type Part = string | RegExp;

/** Checks a caught value; returns it as a ModelFormatError when it is one. */
export function isModelError(t: Tap, err: unknown, parts: Part[], what: string, cls: typeof ModelFormatError = ModelFormatError): ModelFormatError | null {
  if (!(err instanceof cls)) {
    t.fail(`${what}: expected ${cls.name}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    return null;
  }
  const missing = parts.filter((p) => (typeof p === 'string' ? !err.message.includes(p) : !p.test(err.message)));
  t.same(missing, [], `${what}: ${err.message.slice(0, 240)}`);
  return err;
}

/** fn must throw such an error. */
export function throwsModelError(t: Tap, fn: () => unknown, parts: Part[], what: string, cls: typeof ModelFormatError = ModelFormatError): ModelFormatError | null {
  try {
    fn();
  } catch (err) {
    return isModelError(t, err, parts, what, cls);
  }
  t.fail(`${what}: no error`);
  return null;
}

/** The promise must reject with such an error. */
export async function rejectsModelError(t: Tap, p: Promise<unknown>, parts: Part[], what: string): Promise<ModelFormatError | null> {
  try {
    await p;
  } catch (err) {
    return isModelError(t, err, parts, what);
  }
  t.fail(`${what}: no error`);
  return null;
}
