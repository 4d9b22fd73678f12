// Is this an ONNX file? A protobuf has no magic number, so the top-level fields are walked
// (wire format only, nothing decoded or allocated): the first must be ir_version (field 1,
// a varint; every writer serialises fields in number order, so it comes first), and every
// field up to the end, or up to where a truncated file stops, must be one of ModelProto's
// with its wire type. A truncated ONNX file is still recognised, so the importer can report
// where it ends.

/** ModelProto field number -> wire type (0 varint, 2 length-delimited). */
const MODEL_FIELDS: ReadonlyMap<number, number> = new Map([
  [1, 0], [2, 2], [3, 2], [4, 2], [5, 0], [6, 2], [7, 2], [8, 2], [14, 2], [20, 2], [25, 2],
]);

export function looksLikeOnnx(bytes: Uint8Array): boolean {
  let pos = 0;
  const varint = (): number | null => {
    let v = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (pos >= bytes.length) return null;
      const b = bytes[pos++]!;
      if (shift < 49) v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    return NaN;
  };
  let fields = 0;
  while (pos < bytes.length) {
    const tag = varint();
    if (tag === null) return fields > 0;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (fields === 0 && (field !== 1 || wire !== 0)) return false;
    if (MODEL_FIELDS.get(field) !== wire) return false;
    const value = varint();
    if (value === null) return true; // truncated inside a valid field
    if (Number.isNaN(value)) return false;
    if (fields === 0 && !(value >= 1 && value <= 100)) return false; // ir_version
    if (wire === 2) {
      if (value > bytes.length - pos) return true; // truncated inside a valid field
      pos += value;
    }
    fields++;
  }
  return fields > 0;
}
