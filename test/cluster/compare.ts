// The equivalence metric of the cluster tests: max |a - b| / max |b|, the largest weight
// difference relative to the weights' magnitude (NaN in a counts as infinitely far).
export function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    const x = Math.abs(a[i]! - b[i]!);
    d = Number.isNaN(x) ? Infinity : Math.max(d, x);
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}
