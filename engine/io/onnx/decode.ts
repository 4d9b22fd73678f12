// Decoding an ONNX file (a protobuf ModelProto) into messages, with every failure a
// ModelFormatError naming the file and the byte offset. protobufjs checks each length
// against the bytes that are really there before it reads or slices (a length prefix of
// 2^31 in a 1 KB file fails at that prefix, nothing is allocated from it), bounds every
// sub-message by its parent and limits nesting to 100 levels; its errors ("index out of
// range: 812 + 4 > 814") are translated here, with the position where the reader stopped.
import protobuf from 'protobufjs';
import { ModelFormatError } from '../errors.js';
import { ModelProto, int, type ModelMsg } from './schema.js';

/** IR versions are small integers (3 to 9 as of ONNX 1.14); anything beyond this means the bytes are not ONNX. */
const MAX_PLAUSIBLE_IR_VERSION = 100;

export function decodeOnnx(bytes: Uint8Array, file: string): ModelMsg {
  if (bytes.length === 0) throw new ModelFormatError(file, 'byte offset 0', 'the file is empty');
  const reader = protobuf.Reader.create(bytes);
  let model: ModelMsg;
  try {
    model = ModelProto.decode(reader) as unknown as ModelMsg;
  } catch (err) {
    const at = Math.min(reader.pos, bytes.length);
    throw new ModelFormatError(file, `byte offset ${at}`, explain((err as Error).message, bytes.length));
  }
  const ir = int(model.ir_version);
  if (!(ir >= 1 && ir <= MAX_PLAUSIBLE_IR_VERSION)) {
    throw new ModelFormatError(file, 'byte offset 0', `ir_version ${ir}: not an ONNX model (ModelProto field 1 holds the IR version, 3 to 9 in practice)`);
  }
  if (!model.graph) throw new ModelFormatError(file, 'byte offset 0', 'the model has no graph (ModelProto field 7): not an ONNX model');
  return model;
}

function explain(message: string, size: number): string {
  if (/index out of range/.test(message)) {
    return `a field runs past the end of its message or of the ${size}-byte file (truncated or corrupt file): ${message}`;
  }
  if (/invalid wire type/.test(message)) return `not a valid protobuf ModelProto (garbage bytes?): ${message}`;
  if (/nesting depth/.test(message)) return `messages nested more than 100 deep (a hostile or corrupt file): ${message}`;
  return `not a valid ONNX protobuf: ${message}`;
}
