// A bound on what decoding a caffemodel will create, checked before protobufjs decodes it.
//
// protobufjs bounds every length by the file, but a small file can still make it build a
// great many objects: an empty layer message is 3 bytes and becomes a message object and a
// plain object with its arrays (about 400 bytes); a one-byte packed int64 passes through a
// Long object. So the file's message structure is walked first (following the schema,
// skipping what protobufjs skips), counting the messages and values decoding will make;
// a file beyond any real net's count is refused before any of it is decoded. (Blobs are
// decoded separately, into arrays the size of their data: blob-decode.ts.)
//
// Float and double values are not counted: they are the bulk of every real caffemodel, and
// decode to a few bytes per file byte. Structural faults are left to the decoder, which
// reports them with their offset; this walk only stops at them.
import protobuf from 'protobufjs';
import { ModelFormatError } from '../errors.js';

/**
 * One unit is about 32 bytes of decoded objects (measured: an empty layer message retains
 * about 400 bytes; an int64 value passes through a Long object of about 90).
 */
const MESSAGE_COST = 32;
const VALUE_COST = 1;
const INT64_COST = 4;
/**
 * About 128 MB of decoded objects. A layer costs about 36 units (its message, name, type
 * and blobs), so a net of a thousand layers needs some 40 000: this is a hundred times that.
 */
const BUDGET = 4_000_000;
const MAX_DEPTH = 64;

const VARINT_TYPES = new Set(['int32', 'uint32', 'sint32', 'int64', 'uint64', 'sint64', 'bool', 'enum']);
const INT64_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const FIXED_BYTES: Record<string, number> = { fixed32: 4, sfixed32: 4, fixed64: 8, sfixed64: 8 };

class BudgetExceeded extends Error {
  constructor(readonly offset: number) {
    super('budget exceeded');
  }
}

export function checkDecodeBudget(bytes: Uint8Array, type: protobuf.Type, file: string): void {
  const r = protobuf.Reader.create(bytes);
  const spent = { units: 0 };
  try {
    walk(r, type, r.len, spent, 0);
  } catch (err) {
    if (err instanceof BudgetExceeded) {
      throw new ModelFormatError(file, `byte offset ${err.offset}`, `holds more messages and values than any real caffemodel ` +
        `(over ${BUDGET} units: ${MESSAGE_COST} per message, ${INT64_COST} per 64-bit integer, ${VALUE_COST} per other value, ` +
        'float data not counted): refused before decoding');
    }
    // a structural fault: protobufjs's decoder will report it precisely
  }
}

function walk(r: protobuf.Reader, type: protobuf.Type, end: number, spent: { units: number }, depth: number): void {
  if (depth > MAX_DEPTH) return;
  while (r.pos < end) {
    const at = r.pos;
    const tag = r.uint32();
    const wire = tag & 7;
    const field = type.fieldsById[tag >>> 3];
    if (!field) {
      r.skipType(wire); // unknown fields are skipped without creating anything
      continue;
    }
    const nested = field.resolvedType instanceof protobuf.Type ? field.resolvedType : null;
    const scalar = field.resolvedType instanceof protobuf.Enum ? 'enum' : field.type;
    if (nested) {
      // protobufjs decodes a message field as length-delimited whatever its wire type says
      const length = r.uint32();
      const stop = r.pos + length;
      if (stop > r.len) return;
      spent.units += MESSAGE_COST;
      walk(r, nested, stop, spent, depth + 1);
      r.pos = stop;
    } else if (field.repeated && wire === 2 && scalar !== 'string' && scalar !== 'bytes') {
      const length = r.uint32();
      const stop = r.pos + length;
      if (stop > r.len) return;
      const cost = INT64_TYPES.has(scalar) ? INT64_COST : VALUE_COST;
      if (VARINT_TYPES.has(scalar)) {
        // one value per byte without the continuation bit
        for (let i = r.pos; i < stop; i++) if (r.buf[i]! < 0x80) spent.units += cost;
      } else if (FIXED_BYTES[scalar]) {
        spent.units += cost * Math.floor(length / FIXED_BYTES[scalar]!);
      }
      r.pos = stop;
    } else {
      if (scalar !== 'float' && scalar !== 'double') spent.units += INT64_TYPES.has(scalar) ? INT64_COST : VALUE_COST;
      r.skipType(wire);
    }
    if (spent.units > BUDGET) throw new BudgetExceeded(at);
  }
}
