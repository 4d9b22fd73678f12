// The partition of a model's flat parameter vector among the workers of a job
// (DESIGN.md §4): P parameters over N workers in N contiguous slices whose sizes differ by
// at most one, the first (P mod N) slices taking the larger size; rank i owns slice i.
// Every worker computes the same partition from (P, N) alone, so nobody has to send it.
//
// Inside a slice, gradients travel in chunks (buckets) of at most `chunkElements` values,
// so a chunk can leave as soon as the backward pass has produced all of it (the parameter
// manager's overlap of communication with the backward pass). Chunks also come from (P, N,
// chunkElements) alone.

/** A half-open range [start, end) of the flat parameter vector. */
export interface FlatRange {
  readonly start: number;
  readonly end: number;
}

/** Slice `index` of a partition: [start, end) of the flat vector, owned by rank `index`. */
export interface SliceRange extends FlatRange {
  readonly index: number;
  readonly length: number;
}

function checkCount(what: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${what} must be an integer >= ${min}, got ${v}`);
}

/** Slice `index` of `total` parameters over `worldSize` workers. */
export function sliceRange(total: number, worldSize: number, index: number): SliceRange {
  checkCount('sliceRange: the parameter count', total, 0);
  checkCount('sliceRange: the world size', worldSize, 1);
  if (!Number.isSafeInteger(index) || index < 0 || index >= worldSize) {
    throw new RangeError(`sliceRange: slice index must be an integer in [0, ${worldSize}), got ${index}`);
  }
  const q = Math.floor(total / worldSize);
  const r = total % worldSize;
  const start = index * q + Math.min(index, r);
  const length = q + (index < r ? 1 : 0);
  return { index, start, end: start + length, length };
}

/** Every slice of the partition, in rank order; they tile [0, total). */
export function sliceRanges(total: number, worldSize: number): SliceRange[] {
  checkCount('sliceRanges: the world size', worldSize, 1);
  const out: SliceRange[] = [];
  for (let i = 0; i < worldSize; i++) out.push(sliceRange(total, worldSize, i));
  return out;
}

/** The rank that owns flat element `element`. */
export function sliceOwner(total: number, worldSize: number, element: number): number {
  checkCount('sliceOwner: the parameter count', total, 0);
  checkCount('sliceOwner: the world size', worldSize, 1);
  if (!Number.isSafeInteger(element) || element < 0 || element >= total) {
    throw new RangeError(`sliceOwner: element must be an integer in [0, ${total}), got ${element}`);
  }
  const q = Math.floor(total / worldSize);
  const r = total % worldSize;
  const big = r * (q + 1); // the first r slices have q + 1 elements
  return element < big ? Math.floor(element / (q + 1)) : r + Math.floor((element - big) / q);
}

/** A view (no copy) of `range` of a flat array; the array must cover the range. */
export function sliceView<T extends Float32Array | Uint16Array>(array: T, range: FlatRange): T {
  if (range.start < 0 || range.end < range.start || range.end > array.length) {
    throw new RangeError(`sliceView: range [${range.start}, ${range.end}) does not fit an array of length ${array.length}`);
  }
  return array.subarray(range.start, range.end) as T;
}

/**
 * The chunks of a slice: consecutive runs of at most `chunkElements` values in increasing
 * offset order (chunk k covers [start + k*c, min(end, start + (k+1)*c))); none for an empty
 * slice. The parameter manager sends them in DECREASING k, the order in which a backward
 * pass (last layer first) completes them.
 */
export function sliceChunks(range: FlatRange, chunkElements: number): FlatRange[] {
  checkCount('sliceChunks: chunkElements', chunkElements, 1);
  const out: FlatRange[] = [];
  for (let s = range.start; s < range.end; s += chunkElements) out.push({ start: s, end: Math.min(range.end, s + chunkElements) });
  return out;
}
