// What every ciphergate config validator shares: a Walker that collects problems with the path of
// the field (`store.redis.sentinels[1].port: expected integer 1..65535`) so that all of them are
// reported at once, host:port parsing, and the error that lists them. Pure: no fs, no clock;
// relative paths resolve against the baseDir the caller passes (the config file's directory).
import * as path from 'node:path';

export interface HostPort {
  host: string;
  port: number;
}

/** A config that does not validate; `problems` are `field.path: what is wrong`, every one of them. */
export class ConfigError extends Error {
  constructor(
    readonly where: string,
    readonly problems: string[],
  ) {
    super(`${where}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  ${problems.join('\n  ')}`}`);
    this.name = 'ConfigError';
  }
}

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4_RE = /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;

/** Why `host` is not a host name or IP address, or null when it is one. */
export function hostProblem(host: string): string | null {
  if (host.includes(':')) return /^[0-9A-Fa-f:.]+$/.test(host) ? null : `${JSON.stringify(host)} is not an IPv6 address`;
  if (IPV4_RE.test(host) || HOSTNAME_RE.test(host)) return null;
  return `${JSON.stringify(host)} is not a host name or IP address`;
}

/** Parses `host:port` or `[v6]:port`; an error string names the problem. */
export function parseHostPort(text: string): HostPort | string {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return `${JSON.stringify(text)}: expected [IPv6]:port`;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return `${JSON.stringify(text)}: expected host:port`;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return `${JSON.stringify(text)}: write IPv6 addresses as [addr]:port`;
  }
  const hp = hostProblem(host);
  if (hp) return `${JSON.stringify(text)}: ${hp}`;
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return `${JSON.stringify(text)}: port must be 1..65535`;
  return { host, port: Number(portText) };
}

export function formatHostPort(h: HostPort): string {
  return h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

/** `a.b` field path; the top level is ''. */
export const joinPath = (at: string, k: string): string => (at === '' ? k : `${at}.${k}`);

/** Collects problems while walking the JSON. Getters return undefined (or the default) when a value is absent or bad. */
export class Walker {
  readonly problems: string[] = [];
  constructor(
    readonly baseDir: string,
    readonly env: NodeJS.ProcessEnv = {},
  ) {}

  /** `value` when nothing was wrong; otherwise a ConfigError with every problem. */
  result<T>(value: T, where = 'config'): T {
    if (this.problems.length > 0) throw new ConfigError(where, this.problems);
    return value;
  }

  bad(at: string, what: string): undefined {
    this.problems.push(`${at}: ${what}`);
    return undefined;
  }

  /** An object with only `keys` (unknown keys are reported, to catch typos); undefined when absent. */
  obj(at: string, x: unknown, keys: readonly string[]): Record<string, unknown> | undefined {
    if (x === undefined) return undefined;
    if (typeof x !== 'object' || x === null || Array.isArray(x)) return this.bad(at, 'expected an object');
    const o = x as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!keys.includes(k)) this.bad(joinPath(at, k), `unknown field (expected one of ${keys.join(', ')})`);
    return o;
  }

  /** The whole document: a JSON object with only `keys`; anything else is one problem. */
  top(json: unknown, keys: readonly string[]): Record<string, unknown> {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      this.problems.push('expected a JSON object');
      return {};
    }
    return this.obj('', json, keys) ?? {};
  }

  int(at: string, x: unknown, min: number, max: number, def: number): number {
    if (x === undefined) return def;
    if (!Number.isSafeInteger(x) || (x as number) < min || (x as number) > max) {
      this.bad(at, `expected integer ${min}..${max}`);
      return def;
    }
    return x as number;
  }

  /** An object of integer fields, each `[min, max, default]`; `{}` or absent gives every default. */
  ints<K extends string>(at: string, x: unknown, spec: Readonly<Record<K, readonly [number, number, number]>>): Record<K, number> {
    const keys = Object.keys(spec) as K[];
    const o = this.obj(at, x, keys) ?? {};
    const out = {} as Record<K, number>;
    for (const k of keys) {
      const [min, max, def] = spec[k];
      out[k] = this.int(joinPath(at, k), o[k], min, max, def);
    }
    return out;
  }

  bool(at: string, x: unknown, def: boolean): boolean {
    if (x === undefined) return def;
    if (typeof x !== 'boolean') {
      this.bad(at, 'expected true or false');
      return def;
    }
    return x;
  }

  str(at: string, x: unknown, def?: string): string | undefined {
    if (x === undefined) return def;
    if (typeof x !== 'string' || x === '') return this.bad(at, 'expected a non-empty string');
    return x;
  }

  /** One of `values` (strings), or `def` when absent. */
  oneOf<T extends string>(at: string, x: unknown, values: readonly T[], def: T): T {
    if (x === undefined) return def;
    if (typeof x !== 'string' || !(values as readonly string[]).includes(x)) {
      this.bad(at, `expected ${values.map((v) => JSON.stringify(v)).join(' | ')}`);
      return def;
    }
    return x as T;
  }

  /** A non-empty array (at most `max` entries) whose entries `each` maps; bad entries are left out. */
  list<T>(at: string, x: unknown, what: string, each: (at: string, e: unknown) => T | undefined, max = 1024): T[] {
    if (!Array.isArray(x) || x.length === 0) {
      this.bad(at, `expected a non-empty array of ${what}`);
      return [];
    }
    if (x.length > max) this.bad(at, `at most ${max} entries`);
    return x.flatMap((e, i) => {
      const v = each(`${at}[${i}]`, e);
      return v === undefined ? [] : [v];
    });
  }

  path(at: string, x: unknown, def?: string): string | undefined {
    const s = this.str(at, x, def);
    return s === undefined ? undefined : path.resolve(this.baseDir, s);
  }

  hostPort(at: string, x: unknown): HostPort | undefined {
    if (typeof x !== 'string') return this.bad(at, 'expected "host:port"');
    const hp = parseHostPort(x);
    return typeof hp === 'string' ? this.bad(at, hp) : hp;
  }

  /** `"host:port"`, null (off), or `def` when absent. */
  optionalHostPort(at: string, x: unknown, def: HostPort | null): HostPort | null {
    if (x === undefined) return def;
    if (x === null) return null;
    return this.hostPort(at, x) ?? def;
  }

  endpoint(at: string, x: unknown): HostPort | undefined {
    const o = this.obj(at, x, ['host', 'port']);
    if (!o) return x === undefined ? this.bad(at, 'expected { "host": ..., "port": ... }') : undefined;
    const host = this.str(joinPath(at, 'host'), o.host);
    if (host === undefined && o.host === undefined) this.bad(joinPath(at, 'host'), 'required');
    const hp = host === undefined ? null : hostProblem(host);
    if (hp) this.bad(joinPath(at, 'host'), hp);
    if (o.port === undefined) return this.bad(joinPath(at, 'port'), 'required');
    const before = this.problems.length;
    const port = this.int(joinPath(at, 'port'), o.port, 1, 65535, 0);
    return host === undefined || hp || this.problems.length > before ? undefined : { host, port };
  }

  endpoints(at: string, x: unknown): HostPort[] {
    return this.list(at, x, '{ "host": ..., "port": ... }', (a, e) => this.endpoint(a, e), 64);
  }

  /** A secret given inline or through an environment variable (`<name>` or `<name>Env`). */
  secret(at: string, o: Record<string, unknown>, name: string): string | undefined {
    const inline = this.str(joinPath(at, name), o[name]);
    const envName = this.str(joinPath(at, `${name}Env`), o[`${name}Env`]);
    if (inline !== undefined && envName !== undefined) return this.bad(joinPath(at, name), `give ${name} or ${name}Env, not both`);
    if (envName === undefined) return inline;
    const v = this.env[envName];
    if (v === undefined || v === '') return this.bad(joinPath(at, `${name}Env`), `environment variable ${envName} is not set`);
    return v;
  }
}
