// Validation of user-supplied option objects. Options reach the optimisers from code, from
// the command line and from the driver's launch messages, so every value is checked at
// run time and every error names the option (and the owner) that was wrong.

/** An options object; undefined counts as {} unless `required`. */
export function checkObject(owner: string, what: string, v: unknown, required = false): Record<string, unknown> {
  if (v === undefined && !required) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new TypeError(`${owner}: ${what} must be an object, got ${describe(v)}`);
  }
  return v as Record<string, unknown>;
}

/** Rejects any key not in `known`, naming it (a misspelt option would otherwise be silently ignored). */
export function checkNames(owner: string, o: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) {
      throw new TypeError(`${owner}: unknown option '${k}' (known options: ${known.join(', ')})`);
    }
  }
}

export interface NumberRule {
  min?: number;
  /** The minimum itself is not allowed. */
  minExclusive?: boolean;
  max?: number;
  maxExclusive?: boolean;
  integer?: boolean;
}

export function checkNumber(owner: string, name: string, v: unknown, fallback: number | undefined, rule: NumberRule = {}): number {
  if (v === undefined) {
    if (fallback === undefined) throw new TypeError(`${owner}: option '${name}' is required`);
    return fallback;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new TypeError(`${owner}: option '${name}' must be a finite number, got ${describe(v)}`);
  }
  if (rule.integer && !Number.isInteger(v)) {
    throw new RangeError(`${owner}: option '${name}' must be an integer, got ${v}`);
  }
  if (rule.min !== undefined && (v < rule.min || (rule.minExclusive && v === rule.min))) {
    throw new RangeError(`${owner}: option '${name}' must be ${rule.minExclusive ? '>' : '>='} ${rule.min}, got ${v}`);
  }
  if (rule.max !== undefined && (v > rule.max || (rule.maxExclusive && v === rule.max))) {
    throw new RangeError(`${owner}: option '${name}' must be ${rule.maxExclusive ? '<' : '<='} ${rule.max}, got ${v}`);
  }
  return v;
}

export function checkBoolean(owner: string, name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new TypeError(`${owner}: option '${name}' must be a boolean, got ${describe(v)}`);
  return v;
}

export function checkFunction<F extends (...args: never[]) => unknown>(owner: string, name: string, v: unknown): F | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'function') throw new TypeError(`${owner}: option '${name}' must be a function, got ${describe(v)}`);
  return v as F;
}

export function checkSliceLength(owner: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${owner}: sliceLength must be a non-negative integer, got ${describe(n)}`);
  }
  return n;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'undefined') return String(v);
  if (typeof v === 'function') return 'a function';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}
