// Relaxed SIMD (f32x4.relaxed_madd, i.e. FMA) on Node versions that ship it behind a flag.
//
// Node 20's V8 (11.3) implements the relaxed-SIMD proposal completely but validates it only
// under --experimental-wasm-relaxed-simd; the next V8 turns it on by default. V8 reads wasm
// feature flags when it validates a module, so setting the flag before the first relaxed
// module is compiled is enough (v8.setFlagsFromString). A library should not flip V8 flags
// in its host's process uninvited, so this runs only when asked: by the squall command at
// start-up (an application choosing its runtime), or by SQUALL_WASM_SIMD=relaxed.
import { setFlagsFromString } from 'node:v8';

/** The smallest module using f32x4.relaxed_madd: (func (result v128) zero zero zero relaxed_madd). */
const PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type: () -> v128
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x0a, 0x3d, 0x01, 0x3b, 0x00, // code section of 61 bytes: one body of 59 bytes, no locals
  ...[0, 1, 2].flatMap(() => [0xfd, 0x0c, ...new Array<number>(16).fill(0)]), // v128.const 0 (x3)
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd (0xfd 0x105)
  0x0b, // end
]);

/** true when this runtime validates relaxed-SIMD instructions now. */
export function relaxedSimdAccepted(): boolean {
  return WebAssembly.validate(PROBE);
}

/**
 * Makes the runtime accept relaxed SIMD if it can (Node 20: sets --experimental-wasm-relaxed-simd).
 * Returns whether it is accepted afterwards; never throws.
 */
export function enableRelaxedSimd(): boolean {
  if (relaxedSimdAccepted()) return true;
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return relaxedSimdAccepted();
}
