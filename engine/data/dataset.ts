// An in-memory image classification data set: n images stored as one contiguous
// Float32Array in NCHW order (what the convolution kernels take, so a mini-batch is a
// gather of whole rows) and one Int32Array of labels.

export type ImageShape = readonly [channels: number, height: number, width: number];

export interface Dataset {
  /** n x C x H x W values, row-major, one image after another. */
  readonly images: Float32Array;
  /** n labels in [0, classes). */
  readonly labels: Int32Array;
  /** [C, H, W] of one image. */
  readonly shape: ImageShape;
  /** Number of classes; every label is below it. */
  readonly classes: number;
  /** Number of images (n). */
  readonly length: number;
}

/** Values in one image: C * H * W. */
export function imageSize(shape: ImageShape): number {
  return shape[0] * shape[1] * shape[2];
}

export function checkImageShape(shape: ImageShape, what = 'image shape'): void {
  if (shape.length !== 3 || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new RangeError(`${what} must be [C, H, W] with positive integers, got [${shape.join(', ')}]`);
  }
}

/**
 * Wraps images and labels as a Dataset after checking that they agree: the image count
 * matches the label count, and every label is an integer in [0, classes). The arrays are
 * used as given (not copied).
 */
export function createDataset(images: Float32Array, labels: Int32Array, shape: ImageShape, classes: number): Dataset {
  checkImageShape(shape);
  if (!Number.isSafeInteger(classes) || classes < 1) throw new RangeError(`classes must be a positive integer, got ${classes}`);
  const per = imageSize(shape);
  if (images.length !== labels.length * per) {
    throw new RangeError(`images hold ${images.length} values, but ${labels.length} labels of shape [${shape.join(', ')}] need ${labels.length * per}`);
  }
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l < 0 || l >= classes) throw new RangeError(`label ${i} is ${l}, outside [0, ${classes})`);
  }
  return { images, labels, shape: Object.freeze([shape[0], shape[1], shape[2]]) as ImageShape, classes, length: labels.length };
}

/** uint8 pixels scaled to [0, 1] (divided by 255) as float32; `out` is filled when given. */
export function scaleUint8(pixels: Uint8Array, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(pixels.length);
  if (dst.length !== pixels.length) throw new RangeError(`scaleUint8: out has ${dst.length} elements, pixels have ${pixels.length}`);
  // A table avoids one division per pixel; the values are exactly fround(v / 255).
  const table = new Float32Array(256);
  for (let v = 0; v < 256; v++) table[v] = v / 255;
  for (let i = 0; i < pixels.length; i++) dst[i] = table[pixels[i]!]!;
  return dst;
}

/** A Dataset from uint8 pixels (scaled to [0, 1]) and uint8 or int labels. */
export function fromUint8(pixels: Uint8Array, labels: ArrayLike<number>, shape: ImageShape, classes: number): Dataset {
  return createDataset(scaleUint8(pixels), Int32Array.from(labels), shape, classes);
}

/**
 * Images [start, end) as a Dataset sharing storage with `ds` (no copy): writing to the
 * slice (e.g. normalise) writes to `ds` too.
 */
export function sliceDataset(ds: Dataset, start: number, end: number): Dataset {
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end <= ds.length)) {
    throw new RangeError(`sliceDataset(${start}, ${end}) out of range for a data set of ${ds.length} images`);
  }
  const per = imageSize(ds.shape);
  return {
    images: ds.images.subarray(start * per, end * per),
    labels: ds.labels.subarray(start, end),
    shape: ds.shape,
    classes: ds.classes,
    length: end - start,
  };
}

/** A Dataset holding copies of the images at `indices`, in that order. */
export function gatherDataset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const per = imageSize(ds.shape);
  const images = new Float32Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= ds.length) throw new RangeError(`index ${k} is ${i}, outside the data set's [0, ${ds.length})`);
    images.set(ds.images.subarray(i * per, (i + 1) * per), k * per);
    labels[k] = ds.labels[i]!;
  }
  return { images, labels, shape: ds.shape, classes: ds.classes, length: indices.length };
}

/** A deep copy (own storage), e.g. to normalise without touching the original. */
export function cloneDataset(ds: Dataset): Dataset {
  return { images: ds.images.slice(), labels: ds.labels.slice(), shape: ds.shape, classes: ds.classes, length: ds.length };
}

export interface MeanStd {
  /** Per channel, length C. */
  readonly mean: number[];
  /** Per channel population standard deviation (divides by the count, not count - 1). */
  readonly std: number[];
}

/**
 * Per-channel mean and standard deviation over all images, accumulated in float64 with two
 * passes (mean first, then squared deviations), which stays accurate on tens of millions of
 * values where a one-pass sum of squares would cancel.
 */
export function meanStd(ds: Dataset): MeanStd {
  const [c, h, w] = ds.shape;
  const plane = h * w;
  const per = c * plane;
  if (ds.length === 0) throw new RangeError('meanStd: the data set is empty');
  const count = ds.length * plane;
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    for (let n = 0; n < ds.length; n++) {
      const base = n * per + ch * plane;
      for (let i = base; i < base + plane; i++) sum += ds.images[i]!;
    }
    const m = sum / count;
    let sq = 0;
    for (let n = 0; n < ds.length; n++) {
      const base = n * per + ch * plane;
      for (let i = base; i < base + plane; i++) {
        const d = ds.images[i]! - m;
        sq += d * d;
      }
    }
    mean.push(m);
    std.push(Math.sqrt(sq / count));
  }
  return { mean, std };
}

/**
 * IN PLACE: x <- (x - mean[c]) / std[c] for every value of channel c, and returns the same
 * Dataset. In place because a data set is large (Fashion-MNIST's training images are
 * 188 MB as float32) and is normalised once; use cloneDataset first to keep the original.
 * `mean` and `std` are one number for all channels or one per channel; a std that is not
 * positive and finite is an error naming the channel.
 */
export function normalise(ds: Dataset, mean: number | readonly number[], std: number | readonly number[]): Dataset {
  const [c, h, w] = ds.shape;
  const means = perChannel(mean, c, 'mean');
  const stds = perChannel(std, c, 'std');
  for (let ch = 0; ch < c; ch++) {
    if (!Number.isFinite(means[ch]!)) throw new RangeError(`normalise: mean of channel ${ch} is ${means[ch]}`);
    if (!(stds[ch]! > 0 && Number.isFinite(stds[ch]!))) throw new RangeError(`normalise: std of channel ${ch} is ${stds[ch]}, must be positive and finite`);
  }
  const plane = h * w;
  const per = c * plane;
  for (let ch = 0; ch < c; ch++) {
    const m = means[ch]!;
    const s = stds[ch]!;
    for (let n = 0; n < ds.length; n++) {
      const base = n * per + ch * plane;
      for (let i = base; i < base + plane; i++) ds.images[i] = (ds.images[i]! - m) / s;
    }
  }
  return ds;
}

function perChannel(v: number | readonly number[], channels: number, what: string): readonly number[] {
  if (typeof v === 'number') return new Array<number>(channels).fill(v);
  if (v.length !== channels) throw new RangeError(`normalise: ${what} has ${v.length} values, the images have ${channels} channels`);
  return v;
}
