// Command-line options: `--name value`, `--name=value` and boolean `--flag`. Every option
// a command accepts is declared, so a typo is an error that names it and lists the options.

export interface OptionSpec {
  /** 'flag' takes no value. */
  type: 'string' | 'int' | 'number' | 'flag';
  help: string;
  default?: string | number | boolean;
}

export type Parsed = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parseOptions(command: string, args: string[], specs: Record<string, OptionSpec>): Parsed {
  const out: Parsed = {};
  for (const [name, s] of Object.entries(specs)) if (s.default !== undefined) out[name] = s.default;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new UsageError(`${command}: unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const spec = specs[name];
    if (!spec) throw new UsageError(`${command}: unknown option --${name} (options: ${Object.keys(specs).map((k) => `--${k}`).join(', ')})`);
    if (spec.type === 'flag') {
      if (eq >= 0) throw new UsageError(`${command}: --${name} takes no value`);
      out[name] = true;
      continue;
    }
    const raw = eq >= 0 ? a.slice(eq + 1) : args[++i];
    if (raw === undefined) throw new UsageError(`${command}: --${name} needs a value`);
    if (spec.type === 'string') out[name] = raw;
    else {
      const v = Number(raw);
      if (!Number.isFinite(v) || (spec.type === 'int' && !Number.isInteger(v))) {
        throw new UsageError(`${command}: --${name} must be ${spec.type === 'int' ? 'an integer' : 'a number'}, got '${raw}'`);
      }
      out[name] = v;
    }
  }
  return out;
}

export function optionsHelp(specs: Record<string, OptionSpec>): string {
  return Object.entries(specs).map(([k, s]) => {
    const left = `  --${k}${s.type === 'flag' ? '' : ` ${s.type === 'string' ? 'S' : 'N'}`}`;
    return `${left.padEnd(24)} ${s.help}${s.default !== undefined && s.type !== 'flag' ? ` (default ${s.default})` : ''}`;
  }).join('\n');
}

/**
 * Separates positional arguments (`squall convert IN OUT`) from the options around them:
 * an argument is positional unless it is an option or the value of the option before it.
 */
export function splitPositional(args: string[], specs: Record<string, OptionSpec>): { positional: string[]; options: string[] } {
  const positional: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    options.push(a);
    const spec = specs[a.slice(2)];
    if (spec && spec.type !== 'flag' && !a.includes('=') && i + 1 < args.length) options.push(args[++i]!);
  }
  return { positional, options };
}

/** A shape option such as --input-shape 3,224,224 (also 3x224x224). */
export function parseShape(command: string, name: string, raw: string): number[] {
  const parts = raw.split(/[,x]/).map((s) => s.trim());
  const dims = parts.map(Number);
  if (parts.length === 0 || parts.some((p) => p === '') || !dims.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw new UsageError(`${command}: --${name} must be positive sizes separated by commas, e.g. 3,224,224; got '${raw}'`);
  }
  return dims;
}
