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
