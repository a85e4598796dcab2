// The config fields the two datapath daemons (gateway and agent) have in common, validated with a
// Walker: the TCP option, data interfaces, metrics and control endpoints, crypto backend, log
// level, protected endpoint lists and long-term key files. Pure: key files are read through the
// ReadKey function the caller passes (kdc/key-file.ts loadKeyFile in the daemons, a map in tests).
import type { BackendName } from '../crypto/backend';
import { type EndpointRule, parseEndpoint } from '../engine/endpoints';
import { DEFAULT_OPTION_CONFIG, type OptionConfig } from '../protocol/options';
import type { VersionedKey } from '../protocol/ticket';
import { type HostPort, type Walker, joinPath } from './walker';

/** TCP option kinds a configured ciphergate kind may not take: EOL, NOP, MSS, WS, SACK-permitted, SACK, timestamps, UTO, MD5, TCP-AO, Fast Open. */
export const RESERVED_OPTION_KINDS: readonly number[] = [0, 1, 2, 3, 4, 5, 8, 28, 29, 30, 34];

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What the daemons need from a key file (kdc/key-file.ts KeyFile). */
export interface LoadedKey {
  principal: string;
  kvno: number;
  key: Uint8Array;
  /** KDC endpoints as `host:port`. */
  kdc: string[];
}

/** Reads and checks a key file; throws an Error whose message names the file and the fix. */
export type ReadKey = (file: string) => LoadedKey;

export interface ParseOptions {
  /** Names the source in ConfigError (`config /etc/ciphergate/gateway.json`); default `config`. */
  where?: string;
  env?: NodeJS.ProcessEnv;
}

/** A daemon's config parser: JSON, the file's directory, how to read key files, options. */
export type ParseDaemonConfig<C> = (json: unknown, baseDir: string, readKey: ReadKey, opts: ParseOptions) => C;

/** Fields both daemons have, parsed. */
export interface DaemonCommon {
  /** Interfaces whose offloads are checked at start-up. */
  dataInterfaces: string[];
  option: OptionConfig;
  /** Prometheus endpoint; null: off. */
  metrics: HostPort | null;
  /** Unix socket path for `ciphergate status`; null: off. */
  control: string | null;
  cryptoBackend: BackendName;
  log: { level: LogLevel };
}

export const DAEMON_COMMON_FIELDS = ['dataInterfaces', 'option', 'metrics', 'control', 'cryptoBackend', 'log'] as const;

/** A protected endpoint as configured: the engine's rule plus the text it came from, for display. */
export type ConfiguredEndpoint<M> = EndpointRule<M> & { endpoint: string };

// A sockaddr_un path holds 107 bytes and a NUL.
const MAX_UNIX_PATH = 107;

const IFACE_RE = /^[^\s/:]{1,15}$/;

/** A Linux interface name (IFNAMSIZ 16 with the NUL; no slash, colon or white space). */
export function interfaceName(w: Walker, at: string, x: unknown): string | undefined {
  if (typeof x !== 'string' || !IFACE_RE.test(x) || x === '.' || x === '..') return w.bad(at, 'expected an interface name (1..15 characters, no "/", ":" or spaces)');
  return x;
}

/** An array of distinct interface names (may be empty); `def` when absent. */
export function interfaceNames(w: Walker, at: string, x: unknown, def: string[]): string[] {
  if (x === undefined) return def;
  if (!Array.isArray(x)) {
    w.bad(at, 'expected an array of interface names');
    return def;
  }
  const names = x.flatMap((e, i) => interfaceName(w, `${at}[${i}]`, e) ?? []);
  names.forEach((n, i) => {
    if (names.indexOf(n) !== i) w.bad(at, `${n} is listed twice`);
  });
  return [...new Set(names)];
}

export function optionConfig(w: Walker, at: string, x: unknown): OptionConfig {
  const o = w.obj(at, x, ['kind', 'exid']) ?? {};
  const kind = w.int(joinPath(at, 'kind'), o.kind, 0, 255, DEFAULT_OPTION_CONFIG.kind);
  if (RESERVED_OPTION_KINDS.includes(kind)) w.bad(joinPath(at, 'kind'), `${kind} is a TCP option the kernel already uses (not ${RESERVED_OPTION_KINDS.join(', ')}; 253 and 254 are the experimental kinds)`);
  return { kind, exid: w.int(joinPath(at, 'exid'), o.exid, 0, 65535, DEFAULT_OPTION_CONFIG.exid) };
}

/** The common fields of a daemon config's top-level object. */
export function daemonCommon(w: Walker, top: Record<string, unknown>, defaults: { metrics: HostPort; control: string; dataInterfaces: string[] }): DaemonCommon {
  let control: string | null = defaults.control;
  if (top.control === null) control = null;
  else if (top.control !== undefined) {
    control = w.path('control', top.control) ?? defaults.control;
    if (Buffer.byteLength(control) > MAX_UNIX_PATH) w.bad('control', `socket path ${control} is longer than ${MAX_UNIX_PATH} bytes`);
  }
  const log = w.obj('log', top.log, ['level']) ?? {};
  return {
    dataInterfaces: interfaceNames(w, 'dataInterfaces', top.dataInterfaces, defaults.dataInterfaces),
    option: optionConfig(w, 'option', top.option),
    metrics: w.optionalHostPort('metrics', top.metrics, defaults.metrics),
    control,
    cryptoBackend: w.oneOf<BackendName>('cryptoBackend', top.cryptoBackend, ['node', 'noble'], 'node'),
    log: { level: w.oneOf<LogLevel>('log.level', log.level, LOG_LEVELS, 'info') },
  };
}

/**
 * A required non-empty list of `{ "endpoint": "ADDR:PORT" | "CIDR:PORT", ...fields }`; `meta` reads
 * the other fields of one entry. The same endpoint twice is a problem (which rule would win?).
 */
export function endpointList<M>(
  w: Walker,
  at: string,
  x: unknown,
  fields: readonly string[],
  meta: (at: string, o: Record<string, unknown>) => M,
): ConfiguredEndpoint<M>[] {
  if (x === undefined) {
    w.bad(at, 'required');
    return [];
  }
  const rules = w.list(at, x, '{ "endpoint": "ADDR:PORT" }', (a, e) => {
    const o = w.obj(a, e, ['endpoint', ...fields]);
    if (!o) return undefined;
    const m = meta(a, o);
    if (typeof o.endpoint !== 'string') return w.bad(joinPath(a, 'endpoint'), o.endpoint === undefined ? 'required' : 'expected "ADDR:PORT" or "CIDR:PORT"');
    const parsed = parseEndpoint(o.endpoint);
    if (typeof parsed === 'string') return w.bad(joinPath(a, 'endpoint'), parsed);
    return { ...parsed, meta: m, endpoint: o.endpoint };
  });
  const seen = new Map<string, string>();
  for (const r of rules) {
    const k = `${Buffer.from(r.cidr.network).toString('hex')}/${r.cidr.prefix}:${r.port}`;
    const first = seen.get(k);
    if (first !== undefined) w.bad(at, `${r.endpoint} repeats ${first}`);
    else seen.set(k, r.endpoint);
  }
  return rules;
}

/** The engine's rules, without the display text. */
export const engineRules = <M>(list: readonly ConfiguredEndpoint<M>[]): EndpointRule<M>[] => list.map(({ cidr, port, meta }) => ({ cidr, port, meta }));

/** Reads one key file through readKey; its error becomes a problem at `at`. */
export function keyFile(w: Walker, at: string, x: unknown, readKey: ReadKey): { file: string; key: LoadedKey } | undefined {
  if (x === undefined) return w.bad(at, 'required');
  const file = w.path(at, x);
  if (file === undefined) return undefined;
  try {
    return { file, key: readKey(file) };
  } catch (e) {
    return w.bad(at, (e as Error).message);
  }
}

/** The principal: the key file's, which `principal` (when given) must equal. */
export function checkPrincipal(w: Walker, x: unknown, key: LoadedKey | undefined, file: string): string {
  const given = w.str('principal', x);
  if (key === undefined) return given ?? '';
  if (given !== undefined && given !== key.principal) w.bad('principal', `${JSON.stringify(given)} does not match the principal ${JSON.stringify(key.principal)} of key file ${file}`);
  return key.principal;
}

export const versionedKey = (k: LoadedKey): VersionedKey => ({ kvno: k.kvno, key: k.key });
