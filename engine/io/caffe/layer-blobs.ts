// The learned blobs of the caffemodel, found by layer name (as Caffe's
// CopyTrainedLayersFrom matches them: layers of the caffemodel that the prototxt does not
// have, such as a training net's loss or auxiliary classifiers, are ignored and their blobs
// never decoded), and checked against the shapes the prototxt's layer needs.
import { formatShape, shapeSize } from '../../tensor/tensor.js';
import { ModelFormatError } from '../errors.js';
import { decodeBlob, type DecodedBlob } from './blob-decode.js';
import type { TrainedLayer } from './messages.js';

export interface ExpectedBlob {
  /** What the blob is to the layer ("weight", "bias", "mean"...), for messages. */
  role: string;
  shape: number[];
}

/** Legacy 4-D shapes pad with leading 1s ([1, 1, 100, 192] for a 100x192 weight): compare without them. */
function withoutLeadingOnes(shape: readonly number[]): number[] {
  let i = 0;
  while (i < shape.length - 1 && shape[i] === 1) i++;
  return shape.slice(i);
}

export interface CaffeModel {
  file: string;
  /** The whole file: the blobs are views of it, and their offsets in it name faults. */
  bytes: Uint8Array;
  layers: TrainedLayer[];
}

export class LayerBlobs {
  private readonly byName = new Map<string, Uint8Array[]>();
  private readonly decoded = new Map<string, DecodedBlob[]>();

  /** `model` is the caffemodel, or null when only the prototxt was given. */
  constructor(readonly model: CaffeModel | null, readonly file: string) {
    if (!model) return;
    for (const layer of model.layers) {
      if (layer.blobs.length === 0) continue;
      if (this.byName.has(layer.name)) {
        throw new ModelFormatError(file, `layer "${layer.name}"`, 'two layers of the caffemodel with this name carry weights');
      }
      this.byName.set(layer.name, layer.blobs);
    }
  }

  /** The layer's blobs, decoded once; null without a caffemodel (the weights are then initialised). */
  find(layerName: string): DecodedBlob[] | null {
    if (!this.model) return null;
    let blobs = this.decoded.get(layerName);
    if (!blobs) {
      const { bytes, file } = this.model;
      blobs = (this.byName.get(layerName) ?? []).map((b) => {
        // a blob is a view of the file, so its offset in the file is the difference of the views
        const offset = b.buffer === bytes.buffer ? b.byteOffset - bytes.byteOffset : 0;
        return decodeBlob(b, offset, file);
      });
      this.decoded.set(layerName, blobs);
    }
    return blobs;
  }

  /**
   * The layer's blobs as float32 arrays after checking their count and shapes against
   * `expected`; null when there is no caffemodel.
   */
  take(layerName: string, expected: ExpectedBlob[]): Float32Array[] | null {
    const blobs = this.find(layerName);
    if (!blobs) return null;
    const where = `layer "${layerName}"`;
    const want = expected.map((e) => `${e.role} ${formatShape(e.shape)}`).join(', ');
    if (blobs.length === 0) throw new ModelFormatError(this.file, where, `has no weights in the caffemodel; the prototxt's layer needs ${want}`);
    if (blobs.length !== expected.length) {
      const have = blobs.map((b) => formatShape(b.dims)).join(', ');
      throw new ModelFormatError(this.file, where, `has ${blobs.length} blob(s) in the caffemodel (${have}), the prototxt's layer needs ${expected.length} (${want})`);
    }
    return blobs.map((blob, i) => {
      const e = expected[i]!;
      if (formatShape(withoutLeadingOnes(blob.dims)) !== formatShape(withoutLeadingOnes(e.shape))) {
        throw new ModelFormatError(this.file, where, `blob ${i} (${e.role}) has shape ${formatShape(blob.dims)} in the caffemodel, the prototxt's layer needs ${formatShape(e.shape)}`);
      }
      const count = shapeSize(e.shape);
      if (blob.values.length !== count) {
        throw new ModelFormatError(this.file, where, `blob ${i} (${e.role}) of shape ${formatShape(blob.dims)} holds ${blob.values.length} ${blob.kind} values instead of ${count}`);
      }
      return blob.values;
    });
  }
}
