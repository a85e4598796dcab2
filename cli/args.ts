import { UsageError } from './command';

export interface FlagSpec {
  /** Flags that take a value (`--in FILE` or `--in=FILE`). */
  values?: readonly string[];
  /** Boolean flags (`--json`). */
  booleans?: readonly string[];
  /** Value flags that may be given more than once; every value is kept in `all`. */
  repeatable?: readonly string[];
}

export interface ParsedArgs {
  values: Map<string, string>;
  booleans: Set<string>;
  positionals: string[];
  /** Every value of each repeatable flag, in order. */
  all?: Map<string, string[]>;
}

/** Parses argv against a declared set of flags; an unknown flag is a UsageError that names it. */
export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const valueFlags = new Set(spec.values ?? []);
  const booleanFlags = new Set(spec.booleans ?? []);
  const out: ParsedArgs = { values: new Map(), booleans: new Set(), positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) {
      out.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (booleanFlags.has(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      out.booleans.add(name);
    } else if (valueFlags.has(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      out.values.set(name, value);
      if (spec.repeatable?.includes(name)) {
        out.all ??= new Map();
        out.all.set(name, [...(out.all.get(name) ?? []), value]);
      }
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return out;
}

/** The value of a required flag, or a UsageError that names it. */
export function required(args: ParsedArgs, name: string): string {
  const v = args.values.get(name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

/** What `ciphergate gateway` and `ciphergate agent` take: `[--config FILE] [--check | --closed-rules]`. */
export function parseDaemonArgs(argv: readonly string[], defaultConfig: string): { file: string; check: boolean; closedRules: boolean } {
  const args = parseArgs(argv, { values: ['config'], booleans: ['check', 'closed-rules'] });
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
  const check = args.booleans.has('check');
  const closedRules = args.booleans.has('closed-rules');
  if (check && closedRules) throw new UsageError('--check and --closed-rules do not go together');
  return { file: args.values.get('config') ?? defaultConfig, check, closedRules };
}
