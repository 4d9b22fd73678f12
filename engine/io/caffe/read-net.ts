// Reading the two files of a Caffe model: the prototxt through the text parser and the
// typing step into a NetMsg (messages.ts), the binary caffemodel through protobufjs into
// its layers' names and encoded blobs (the schema's Weights* view). protobufjs
// bounds-checks every length against the buffer (a declared length past the end throws
// rather than allocating), and its exceptions are rethrown as ModelFormatError at the byte
// offset where the decoder stopped; what a file would make it create is bounded first
// (decode-budget.ts).
import protobuf from 'protobufjs';
import { ModelFormatError } from '../errors.js';
import { checkDecodeBudget } from './decode-budget.js';
import type { NetMsg, TrainedLayer } from './messages.js';
import { parsePrototxt } from './prototxt-parser.js';
import { caffeType } from './schema.js';
import { typeTextMessage } from './text-message.js';

/** The caffemodel's layers with their blobs (still encoded: blob-decode.ts reads the ones the prototxt uses). */
export function decodeCaffeModel(bytes: Uint8Array, file: string): TrainedLayer[] {
  const type = caffeType('WeightsNet');
  checkDecodeBudget(bytes, type, file);
  const reader = protobuf.Reader.create(bytes);
  let decoded: protobuf.Message;
  try {
    decoded = type.decode(reader);
  } catch (err) {
    // Also catches a RangeError from deep nesting: the decoder recurses per nested message.
    throw new ModelFormatError(file, `byte offset ${Math.min(reader.pos, bytes.length)}`, `not a valid caffemodel (protobuf NetParameter): ${(err as Error).message}`);
  }
  // bytes fields stay views of the file (toObject does not copy them)
  const net = type.toObject(decoded, { arrays: true, defaults: true }) as { layer: TrainedLayer[]; layers: TrainedLayer[] };
  return [...net.layer, ...net.layers];
}

export function parseNetPrototxt(text: string, file: string): NetMsg {
  return typeTextMessage(parsePrototxt(text, file), caffeType('NetParameter'), file) as unknown as NetMsg;
}
