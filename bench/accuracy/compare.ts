// Distances between the Squall and PyTorch records of the controlled comparison.

/** max over i in [from, to) of |a[i] - b[i]| / |b[i]| (b is the reference). */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>, from = 0, to = b.length): number {
  let m = 0;
  for (let i = from; i < Math.min(to, a.length, b.length); i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.abs(b[i]!));
  return m;
}

/** First index (from 0) where |a - b| / |b| exceeds `tol`, or null. */
export function firstExceeding(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): number | null {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (Math.abs(a[i]! - b[i]!) / Math.abs(b[i]!) > tol) return i;
  return null;
}

/** ||a - b|| / ||b - base||, or ||a - b|| / ||b|| without base (Euclidean norms over [from, to)). */
export function relNorm(a: ArrayLike<number>, b: ArrayLike<number>, base?: ArrayLike<number>, from = 0, to = b.length): number {
  let num = 0;
  let den = 0;
  for (let i = from; i < to; i++) {
    const d = a[i]! - b[i]!;
    const r = b[i]! - (base ? base[i]! : 0);
    num += d * d;
    den += r * r;
  }
  return Math.sqrt(num / den);
}

/** max |a - b| / max |b| over [from, to): the difference on the scale of the reference's largest value. */
export function maxAbsDiffOverMax(a: ArrayLike<number>, b: ArrayLike<number>, from = 0, to = b.length): number {
  let num = 0;
  let den = 0;
  for (let i = from; i < to; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

export interface Span {
  name: string;
  offset: number;
  size: number;
}

/** Flat spans of parameters of the given shapes, named. */
export function spans(names: string[], shapes: number[][]): Span[] {
  let offset = 0;
  return shapes.map((s, i) => {
    const size = s.reduce((x, y) => x * y, 1);
    const span = { name: names[i]!, offset, size };
    offset += size;
    return span;
  });
}

/** Windows [from, to) of iterations (0-based) ending at each epoch's end and at the given early marks. */
export function windows(total: number, perEpoch: number, marks: number[]): [number, number][] {
  const ends = [...new Set([...marks.filter((m) => m < total), ...Array.from({ length: Math.ceil(total / perEpoch) }, (_, e) => Math.min(total, (e + 1) * perEpoch))])].sort((a, b) => a - b);
  return ends.map((end, k) => [k === 0 ? 0 : ends[k - 1]!, end]);
}

/** What each run records, for divergence(). */
export interface RunRecord {
  losses: ArrayLike<number>;
  grad1: Float32Array;
  step1: Float32Array;
  final: Float32Array;
}

export interface LayerDivergence {
  layer: string;
  /** First-iteration gradient: max |Δ| / max |g| over the layer. */
  grad1: number;
  /** Weights after the first step: max relative difference. */
  step1: number;
  /** Final weights: ‖Δ‖ / ‖w‖. */
  final: number;
}

export interface Divergence {
  /** Max relative loss difference over iterations 1 .. early. */
  lossEarly: number;
  lossAll: number;
  /** First iteration (from 1) whose relative loss difference exceeds tol, or null. */
  firstOverTol: number | null;
  lossWindows: { from: number; to: number; maxRelDiff: number }[];
  /** ‖Δ‖ / ‖w‖ and ‖Δ‖ / ‖w − w0‖ of the final weights. */
  finalRel: number;
  finalRelToTravel: number;
  layers: LayerDivergence[];
}

/** How far run `a` drifts from the reference run `ref` that started from `init`. */
export function divergence(a: RunRecord, ref: RunRecord, init: Float32Array, layout: Span[],
  o: { early: number; tol: number; perEpoch: number; marks: number[] }): Divergence {
  const first = firstExceeding(a.losses, ref.losses, o.tol);
  return {
    lossEarly: maxRelDiff(a.losses, ref.losses, 0, o.early),
    lossAll: maxRelDiff(a.losses, ref.losses),
    firstOverTol: first === null ? null : first + 1,
    lossWindows: windows(ref.losses.length, o.perEpoch, o.marks).map(([from, to]) => ({ from, to, maxRelDiff: maxRelDiff(a.losses, ref.losses, from, to) })),
    finalRel: relNorm(a.final, ref.final),
    finalRelToTravel: relNorm(a.final, ref.final, init),
    layers: layout.map((sp) => ({
      layer: sp.name,
      grad1: maxAbsDiffOverMax(a.grad1, ref.grad1, sp.offset, sp.offset + sp.size),
      step1: maxRelDiff(a.step1, ref.step1, sp.offset, sp.offset + sp.size),
      final: relNorm(a.final, ref.final, undefined, sp.offset, sp.offset + sp.size),
    })),
  };
}
