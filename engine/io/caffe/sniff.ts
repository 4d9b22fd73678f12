// Recognising Caffe's two files without loading them, for the loader that picks an importer
// by content. Both checks are cheap and never throw.
import protobuf from 'protobufjs';

/** NetParameter's field numbers and the wire type each is written with (2: length-delimited, 0: varint). */
const NET_FIELD_WIRE: Record<number, number[]> = {
  1: [2], // name
  2: [2], // layers (V1)
  3: [2], // input
  4: [0, 2], // input_dim (unpacked or packed)
  5: [0], // force_backward
  6: [2], // state
  7: [0], // debug_info
  8: [2], // input_shape
  100: [2], // layer
};

/**
 * A prototxt: protobuf text whose first statement is a field (`name: "..."`, `layer {`,
 * `input: ...`) and which declares layers or inputs somewhere.
 */
export function looksLikePrototxt(text: string): boolean {
  if (text.includes('\0')) return false;
  const code = text.replace(/#[^\n]*/g, '');
  if (!/^\s*[A-Za-z_][A-Za-z0-9_]*\s*(:|\{|<)/.test(code)) return false;
  return /(^|[\s;,{])(layers?\s*:?\s*[{<]|input\s*:|input_shape\s*:?\s*[{<]|input_dim\s*:)/.test(code);
}

/**
 * A caffemodel: a protobuf NetParameter. Its top-level fields are walked (each one a tag and
 * a skip, so this is quick even for a large file) and must all be NetParameter fields with
 * their wire types, and one must be a layer. A file that ends inside a field still counts
 * when the fields before it are right, so a truncated caffemodel reaches the importer's
 * precise error rather than "unknown format".
 */
export function looksLikeCaffeModel(bytes: Uint8Array): boolean {
  const r = protobuf.Reader.create(bytes);
  let fields = 0;
  let sawLayer = false;
  while (r.pos < r.len) {
    let id: number;
    try {
      const tag = r.uint32();
      id = tag >>> 3;
      if (!NET_FIELD_WIRE[id]?.includes(tag & 7)) return false;
      if (id === 2 || id === 100) sawLayer = true;
      r.skipType(tag & 7);
    } catch {
      return fields > 0 || sawLayer;
    }
    fields++;
  }
  return sawLayer;
}
