/**
 * A small, strict argument parser for the CLI: every command declares its options once;
 * unknown options, missing values and bad numbers are usage errors (exit code 2).
 */

export class UsageError extends Error {
  readonly command: string;
  constructor(command: string, message: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

export interface OptionSpec {
  /** Long name without dashes, e.g. 'output'. */
  name: string;
  short?: string;
  /** 'boolean' flags take no value. */
  type: 'string' | 'number' | 'boolean' | 'list';
  /** Value placeholder for help, e.g. 'FILE'. */
  value?: string;
  help: string;
  /** Allowed values for string options. */
  choices?: readonly string[];
  /** Other long names accepted for the same option (e.g. 'frequency' for 'rate'). */
  aliases?: string[];
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  /** Positional arguments: names for help; min/max counts. */
  positionals: { min: number; max: number };
  options: OptionSpec[];
  examples: string[];
  /** Accept `-- cmd args…` after the options (captured as `rest`). */
  rest?: boolean;
}

export interface Parsed {
  positionals: string[];
  options: Record<string, string | number | boolean | string[] | undefined>;
  rest: string[];
}

export function parseArgs(spec: CommandSpec, argv: string[]): Parsed {
  const out: Parsed = { positionals: [], options: {}, rest: [] };
  const byLong = new Map<string, OptionSpec>();
  const byShort = new Map<string, OptionSpec>();
  for (const o of spec.options) {
    byLong.set(o.name, o);
    for (const a of o.aliases ?? []) byLong.set(a, o);
    if (o.short) byShort.set(o.short, o);
  }
  const set = (o: OptionSpec, raw: string | undefined, flag: string) => {
    if (o.type === 'boolean') {
      out.options[o.name] = true;
      return;
    }
    if (raw === undefined) throw new UsageError(spec.name, `option ${flag} needs a value${o.value ? ` (${o.value})` : ''}`);
    if (o.type === 'number') {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new UsageError(spec.name, `option ${flag} expects a number, got '${raw}'`);
      out.options[o.name] = n;
    } else if (o.type === 'list') {
      const prev = (out.options[o.name] as string[] | undefined) ?? [];
      out.options[o.name] = [...prev, ...raw.split(',').filter(Boolean)];
    } else {
      if (o.choices && !o.choices.includes(raw)) throw new UsageError(spec.name, `option ${flag} must be one of ${o.choices.join(', ')}; got '${raw}'`);
      out.options[o.name] = raw;
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      if (!spec.rest) throw new UsageError(spec.name, `'--' is not used by ${spec.name}`);
      out.rest = argv.slice(i + 1);
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const negated = key.startsWith('no-') && !byLong.has(key) ? key.slice(3) : undefined;
      const o = byLong.get(negated ?? key);
      if (!o) throw new UsageError(spec.name, `unknown option --${key}`);
      if (negated !== undefined) {
        if (o.type !== 'boolean') throw new UsageError(spec.name, `--${key}: only on/off options can be negated`);
        out.options[o.name] = false;
        continue;
      }
      if (o.type === 'boolean') {
        if (eq >= 0) throw new UsageError(spec.name, `option --${key} takes no value`);
        set(o, undefined, `--${key}`);
      } else set(o, eq >= 0 ? a.slice(eq + 1) : argv[++i], `--${key}`);
    } else if (a.startsWith('-') && a.length > 1 && !/^-\d/.test(a)) {
      const o = byShort.get(a[1]!);
      if (!o) throw new UsageError(spec.name, `unknown option ${a}`);
      if (o.type === 'boolean') {
        // Allow bundles like -ti.
        for (const ch of a.slice(1)) {
          const b = byShort.get(ch);
          if (!b || b.type !== 'boolean') throw new UsageError(spec.name, `unknown option -${ch} in ${a}`);
          out.options[b.name] = true;
        }
      } else set(o, a.length > 2 ? a.slice(2) : argv[++i], `-${a[1]}`);
    } else {
      out.positionals.push(a);
    }
  }
  const n = out.positionals.length;
  if (n < spec.positionals.min) throw new UsageError(spec.name, `missing argument: ${spec.usage}`);
  if (n > spec.positionals.max) throw new UsageError(spec.name, `unexpected argument '${out.positionals[spec.positionals.max]}'`);
  return out;
}

export function renderHelp(spec: CommandSpec): string {
  const lines = [`${spec.summary}`, '', `Usage: ${spec.usage}`, '', 'Options:'];
  const opts = [...spec.options, { name: 'help', short: 'h', type: 'boolean' as const, help: 'show this help' }];
  const left = opts.map((o) => `${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.value ? ` ${o.value}` : ''}`);
  const w = Math.max(...left.map((l) => l.length));
  opts.forEach((o, i) => {
    const extra = [o.choices ? `one of: ${o.choices.join(', ')}` : '', (o as OptionSpec).aliases?.length ? `also --${(o as OptionSpec).aliases!.join(', --')}` : ''].filter(Boolean).join('; ');
    lines.push(`  ${left[i]!.padEnd(w)}  ${o.help}${extra ? ` (${extra})` : ''}`);
  });
  lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return lines.join('\n') + '\n';
}
