// `ciphergate kdc-admin`: administration of the KDC, in the style of kadmin. Talks to the store
// directly (embedded directory or Redis) with the master key from the config; every change is a
// compare-and-set, and also goes to the audit log.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { getBackend } from '../../common/crypto';
import { type RandomSource, systemRandom } from '../../common/crypto/random';
import { DEFAULT_CONFIG_PATH, type KdcConfig, loadKdcConfig, parseHostPort } from '../../kdc/config';
import { type KeyFile, writeKeyFile } from '../../kdc/key-file';
import {
  MASTER_KEY_LEN,
  type MasterKeyRing,
  describeSource,
  loadMasterKeyFile,
  loadMasterKeyRing,
  makeMasterKey,
  MasterKeyRing as Ring,
  writeMasterKeyFile,
} from '../../kdc/master-key';
import { PolicyAdmin, PolicyError, makeRule } from '../../kdc/policy';
import { PrincipalAdmin, type PrincipalInfo, canonicalCidr, groupNameProblem, principalNameProblem } from '../../kdc/principals';
import { type AuditEvent, type KdcStore, type StoreConfig, type StoreMeta, StoreUnavailableError, openStore } from '../../kdc/store';
import { parseArgs, type ParsedArgs } from '../args';
import { type Command, UsageError } from '../command';

const usage = `usage: ciphergate kdc-admin [--config FILE] [--json] <command> [arguments]

  init                          create the master key stash (when the config names a file that
                                does not exist yet) and initialize the store
  principal add NAME [--group G]... [--allow-net CIDR]... [--disabled]
  principal rotate NAME [--grace-ms N]      new key, kvno + 1; the old key stays valid for the
                                            grace period (config graceMs unless given)
  principal disable NAME | enable NAME | delete NAME
  principal modify NAME [--group G]... [--allow-net CIDR]... [--clear-groups] [--clear-nets]
  principal show NAME | list
  principal export NAME --out FILE [--kdc HOST:PORT]... [--force]
                                write the principal's current key to a key file (mode 0600) for
                                its agent or gateway
  policy add --client NAME|group:G ... --gateway NAME ... --service ADDR:PORT ... [--id ID] [--comment TEXT]
                                services: ADDR:PORT, *:PORT, ADDR:*, * (IPv6 as [ADDR]:PORT)
  policy remove ID | list
  audit tail [-n N]             the last N audit events (default 20), oldest first
  master-key generate --out FILE
                                a new master key stash (mode 0600), for a rotation
  master-key rotate --new-key-file FILE
                                re-seal every principal key under the key in FILE (created if
                                missing), then record it as the store's master key
  master-key status             the store's master key, the loaded ones, keys per master key

options:
  --config FILE   KDC config (default $CIPHERGATE_KDC_CONFIG, else ${DEFAULT_CONFIG_PATH})
  --json          JSON on stdout
Repeatable flags also take comma-separated lists. Exit status: 0 ok, 1 failure, 2 usage.`;

/** What the command touches outside itself; tests pass their own. */
export interface AdminIo {
  out(text: string): void;
  env: NodeJS.ProcessEnv;
  now(): number;
  random: RandomSource;
  /** Recorded in audit events as `by`. */
  user: string;
}

function defaultIo(): AdminIo {
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (containers)
  }
  return { out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`), env: process.env, now: Date.now, random: systemRandom, user };
}

const REPEATABLE = ['group', 'allow-net', 'client', 'gateway', 'service', 'kdc'];
const VALUES = ['config', 'grace-ms', 'out', 'id', 'comment', 'count', 'new-key-file'];
const BOOLEANS = ['json', 'disabled', 'clear-groups', 'clear-nets', 'force'];

/** Pulls repeatable flags (each may also be comma-separated) out of argv; `-n N` becomes --count. */
function splitArgs(argv: readonly string[]): { args: ParsedArgs; lists: Map<string, string[]> } {
  const rest: string[] = [];
  const lists = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-n') {
      rest.push('--count');
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(a);
    if (m && REPEATABLE.includes(m[1]!)) {
      const v = m[2] ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${m[1]} needs a value`);
      const parts = v.split(',').map((s) => s.trim());
      if (parts.some((p) => p === '')) throw new UsageError(`--${m[1]}: empty entry in ${JSON.stringify(v)}`);
      lists.set(m[1]!, [...(lists.get(m[1]!) ?? []), ...parts]);
      continue;
    }
    rest.push(a);
  }
  return { args: parseArgs(rest, { values: VALUES, booleans: BOOLEANS }), lists };
}

function onlyFlags(args: ParsedArgs, lists: Map<string, string[]>, what: string, allowed: readonly string[]): void {
  const used = [...args.values.keys(), ...args.booleans, ...lists.keys()].filter((f) => f !== 'config' && f !== 'json');
  for (const f of used) if (!allowed.includes(f)) throw new UsageError(`${what} does not take --${f}`);
}

function positionals(args: ParsedArgs, what: string, names: readonly string[]): string[] {
  const p = args.positionals.slice(2);
  if (p.length < names.length) throw new UsageError(`${what}: missing ${names.slice(p.length).join(' ')}`);
  if (p.length > names.length) throw new UsageError(`${what}: unexpected argument ${JSON.stringify(p[names.length])}`);
  names.forEach((n, i) => {
    const problem = n === 'NAME' ? principalNameProblem(p[i]!) : null;
    if (problem) throw new UsageError(`${what}: ${problem}`);
  });
  return p;
}

/** Checks --group and --allow-net values before anything is opened. */
function checkLists(lists: Map<string, string[]>): void {
  for (const g of lists.get('group') ?? []) {
    const problem = groupNameProblem(g);
    if (problem) throw new UsageError(`--group: ${problem}`);
  }
  for (const n of lists.get('allow-net') ?? []) {
    const c = canonicalCidr(n);
    if (!c.ok) throw new UsageError(`--allow-net: ${c.error}`);
  }
}

function intFlag(args: ParsedArgs, name: string, min: number, max: number): number | undefined {
  const v = args.values.get(name);
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name}: expected an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}

const iso = (ms: number) => new Date(ms).toISOString();

function showText(p: PrincipalInfo, now: number): string {
  const lines = [
    `principal  ${p.name}`,
    `kvno       ${p.kvno}`,
    `disabled   ${p.disabled ? 'yes' : 'no'}`,
    `groups     ${p.groups.join(', ') || '-'}`,
    `allowed    ${p.allowedNets.join(', ') || 'any address'}`,
    `created    ${iso(p.createdAt)}`,
    `updated    ${iso(p.updatedAt)}`,
  ];
  p.keys.forEach((k, i) => {
    const state = i === 0 ? 'current' : k.validUntil !== null && now <= k.validUntil ? `valid until ${iso(k.validUntil)}` : 'expired';
    lines.push(`${i === 0 ? 'keys      ' : '          '} kvno ${k.kvno} ${state} (master key ${k.masterKeyId})`);
  });
  return lines.join('\n');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n');
}

interface Ctx {
  cfg: KdcConfig;
  store: KdcStore;
  ring: MasterKeyRing;
  meta: { value: StoreMeta; revision: number };
  io: AdminIo;
  json: boolean;
}

/** The store as admin uses it: it never issues, so it neither replays nor writes the request id journal. */
function openAdminStore(config: StoreConfig): Promise<KdcStore> {
  return openStore(config.type === 'embedded' ? { ...config, issuedJournal: false } : config);
}

/** Loads config, master key and store, and checks that they belong together. */
async function withContext<T>(configPath: string, io: AdminIo, json: boolean, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  const cfg = loadKdcConfig(configPath, io.env);
  const backend = getBackend(cfg.cryptoBackend);
  const ring = loadMasterKeyRing(backend, cfg.masterKey, io.env);
  const store = await openAdminStore(cfg.store);
  try {
    const meta = await store.getMeta();
    if (!meta) throw new Error(`store ${store.description} is not initialized; run \`ciphergate kdc-admin init\``);
    ring.verifyMeta(meta.value);
    // New seals go under the store's recorded master key, whichever of the loaded keys it is.
    return await fn({ cfg, store, ring: ring.withCurrent(meta.value.masterKeyId), meta, io, json });
  } finally {
    await store.close();
  }
}

/** Records an admin action; never fails the command (the change is already made). */
async function audit(ctx: { store: KdcStore; io: AdminIo }, action: string, fields: Record<string, string | number | boolean>): Promise<void> {
  const event: AuditEvent = { ts: ctx.io.now(), type: 'admin', action, by: ctx.io.user, ...fields };
  await ctx.store.appendAudit([event]).catch(() => undefined);
}

/** A failed write may still have happened (lost reply): say so. */
async function write<T>(what: string, check: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof StoreUnavailableError) throw new Error(`${e.message}; ${what} may or may not have been made, check with \`${check}\``);
    throw e;
  }
}

async function init(configPath: string, io: AdminIo, json: boolean): Promise<void> {
  const cfg = loadKdcConfig(configPath, io.env);
  const backend = getBackend(cfg.cryptoBackend);
  const store = await openAdminStore(cfg.store);
  try {
    const existing = await store.getMeta();
    if (existing) throw new Error(`store ${store.description} is already initialized (master key ${existing.value.masterKeyId})`);
    let created = false;
    const src = cfg.masterKey.current;
    if ('file' in src && !fs.existsSync(src.file)) {
      const key = io.random(MASTER_KEY_LEN);
      writeMasterKeyFile(src.file, key);
      key.fill(0);
      created = true;
    }
    const ring = loadMasterKeyRing(backend, cfg.masterKey, io.env);
    const now = io.now();
    const meta: StoreMeta = { format: 1, masterKeyId: ring.current.id, masterKeyVersion: 1, masterKeyCheck: ring.makeCheck(io.random), createdAt: now, updatedAt: now };
    const r = await store.putMeta(meta, null);
    if (!r.ok) throw new Error(`store ${store.description} was initialized by someone else meanwhile`);
    await audit({ store, io }, 'init', { masterKeyId: ring.current.id });
    const result = { store: store.description, masterKeyId: ring.current.id, masterKeySource: describeSource(src), stashCreated: created };
    io.out(json ? JSON.stringify(result) : `initialized ${store.description} with master key ${ring.current.id} (${describeSource(src)}${created ? ', created' : ''})`);
  } finally {
    await store.close();
  }
}

type Exec = (ctx: Ctx) => Promise<void>;

/** Validates a principal command (no I/O) and returns what runs it. */
function principalCmd(args: ParsedArgs, lists: Map<string, string[]>): Exec {
  const sub = args.positionals[1];
  const what = `principal ${sub}`;
  checkLists(lists);
  const admin = (ctx: Ctx) => new PrincipalAdmin(ctx.store, ctx.ring, { now: ctx.io.now, random: ctx.io.random, graceMs: ctx.cfg.graceMs });
  const print = (ctx: Ctx, p: PrincipalInfo) => ctx.io.out(ctx.json ? JSON.stringify(p) : showText(p, ctx.io.now()));
  switch (sub) {
    case 'add': {
      onlyFlags(args, lists, what, ['group', 'allow-net', 'disabled']);
      const [name] = positionals(args, what, ['NAME']) as [string];
      return async (ctx) => {
        const p = await write('the principal', `kdc-admin principal show ${name}`, () =>
          admin(ctx).add(name, { groups: lists.get('group') ?? [], allowedNets: lists.get('allow-net') ?? [], disabled: args.booleans.has('disabled') }),
        );
        await audit(ctx, 'principal.add', { principal: name, kvno: p.kvno });
        print(ctx, p);
      };
    }
    case 'rotate': {
      onlyFlags(args, lists, what, ['grace-ms']);
      const [name] = positionals(args, what, ['NAME']) as [string];
      const grace = intFlag(args, 'grace-ms', 0, 366 * 86_400_000);
      return async (ctx) => {
        const p = await write('the rotation', `kdc-admin principal show ${name}`, () => admin(ctx).rotate(name, grace));
        await audit(ctx, 'principal.rotate', { principal: name, kvno: p.kvno });
        print(ctx, p);
      };
    }
    case 'disable':
    case 'enable': {
      onlyFlags(args, lists, what, []);
      const [name] = positionals(args, what, ['NAME']) as [string];
      return async (ctx) => {
        const p = await write('the change', `kdc-admin principal show ${name}`, () => admin(ctx).setDisabled(name, sub === 'disable'));
        await audit(ctx, `principal.${sub}`, { principal: name });
        print(ctx, p);
      };
    }
    case 'modify': {
      onlyFlags(args, lists, what, ['group', 'allow-net', 'clear-groups', 'clear-nets']);
      const [name] = positionals(args, what, ['NAME']) as [string];
      if (args.booleans.has('clear-groups') && lists.has('group')) throw new UsageError('give --group or --clear-groups, not both');
      if (args.booleans.has('clear-nets') && lists.has('allow-net')) throw new UsageError('give --allow-net or --clear-nets, not both');
      const groups = args.booleans.has('clear-groups') ? [] : lists.get('group');
      const allowedNets = args.booleans.has('clear-nets') ? [] : lists.get('allow-net');
      if (groups === undefined && allowedNets === undefined) throw new UsageError(`${what}: nothing to change (--group, --allow-net, --clear-groups, --clear-nets)`);
      return async (ctx) => {
        const p = await write('the change', `kdc-admin principal show ${name}`, () => admin(ctx).modify(name, { groups, allowedNets }));
        await audit(ctx, 'principal.modify', { principal: name });
        print(ctx, p);
      };
    }
    case 'delete': {
      onlyFlags(args, lists, what, []);
      const [name] = positionals(args, what, ['NAME']) as [string];
      return async (ctx) => {
        await write('the deletion', `kdc-admin principal show ${name}`, () => admin(ctx).delete(name));
        await audit(ctx, 'principal.delete', { principal: name });
        ctx.io.out(ctx.json ? JSON.stringify({ deleted: name }) : `deleted principal ${name}`);
      };
    }
    case 'show': {
      onlyFlags(args, lists, what, []);
      const [name] = positionals(args, what, ['NAME']) as [string];
      return async (ctx) => print(ctx, await admin(ctx).show(name));
    }
    case 'list': {
      onlyFlags(args, lists, what, []);
      positionals(args, what, []);
      return async (ctx) => {
        const all = await admin(ctx).list();
        if (ctx.json) return ctx.io.out(JSON.stringify(all));
        if (all.length === 0) return ctx.io.out('no principals');
        ctx.io.out(table([['NAME', 'KVNO', 'DISABLED', 'GROUPS', 'ALLOWED'], ...all.map((p) => [p.name, String(p.kvno), p.disabled ? 'yes' : 'no', p.groups.join(',') || '-', p.allowedNets.join(',') || 'any'])]));
      };
    }
    case 'export': {
      onlyFlags(args, lists, what, ['out', 'kdc', 'force']);
      const [name] = positionals(args, what, ['NAME']) as [string];
      const out = args.values.get('out');
      if (out === undefined) throw new UsageError(`${what}: --out FILE is required`);
      const kdc = lists.get('kdc') ?? [];
      for (const k of kdc) {
        const hp = parseHostPort(k);
        if (typeof hp === 'string') throw new UsageError(`--kdc: ${hp}`);
      }
      return async (ctx) => {
        const exported = await admin(ctx).exportKey(name);
        const file: KeyFile = { principal: name, kvno: exported.kvno, key: exported.key, kdc, exportedAt: iso(ctx.io.now()) };
        try {
          writeKeyFile(out, file, args.booleans.has('force'));
        } finally {
          exported.key.fill(0);
        }
        await audit(ctx, 'principal.export', { principal: name, kvno: exported.kvno });
        ctx.io.out(ctx.json ? JSON.stringify({ principal: name, kvno: exported.kvno, file: out }) : `wrote key file ${out} for ${name} kvno ${exported.kvno} (mode 0600)`);
      };
    }
    case undefined:
      throw new UsageError('principal: missing subcommand (add, rotate, disable, enable, modify, delete, show, list, export)');
    default:
      throw new UsageError(`principal: unknown subcommand ${JSON.stringify(sub)} (add, rotate, disable, enable, modify, delete, show, list, export)`);
  }
}

function policyCmd(args: ParsedArgs, lists: Map<string, string[]>): Exec {
  const sub = args.positionals[1];
  const what = `policy ${sub}`;
  const admin = (ctx: Ctx) => new PolicyAdmin(ctx.store, { now: ctx.io.now, random: ctx.io.random });
  switch (sub) {
    case 'add': {
      onlyFlags(args, lists, what, ['client', 'gateway', 'service', 'id', 'comment']);
      positionals(args, what, []);
      for (const f of ['client', 'gateway', 'service']) if (!lists.has(f)) throw new UsageError(`${what}: --${f} is required`);
      const comment = args.values.get('comment');
      const input = { id: args.values.get('id'), clients: lists.get('client')!, gateways: lists.get('gateway')!, services: lists.get('service')!, ...(comment !== undefined ? { comment } : {}) };
      try {
        makeRule(input, 0, (n) => new Uint8Array(n)); // validation only
      } catch (e) {
        if (e instanceof PolicyError) throw new UsageError(`${what}: ${e.message}`);
        throw e;
      }
      return async (ctx) => {
        const rule = await write('the rule', 'kdc-admin policy list', () => admin(ctx).add(input));
        await audit(ctx, 'policy.add', { rule: rule.id });
        ctx.io.out(ctx.json ? JSON.stringify(rule) : `added policy rule ${rule.id}: ${rule.clients.join(',')} -> ${rule.gateways.join(',')} ${rule.services.join(',')}`);
      };
    }
    case 'remove': {
      onlyFlags(args, lists, what, []);
      const [id] = positionals(args, what, ['ID']) as [string];
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) throw new UsageError(`${what}: rule id ${JSON.stringify(id)} must be 1..64 of A-Z a-z 0-9 . _ -`);
      return async (ctx) => {
        await write('the removal', 'kdc-admin policy list', () => admin(ctx).remove(id));
        await audit(ctx, 'policy.remove', { rule: id });
        ctx.io.out(ctx.json ? JSON.stringify({ removed: id }) : `removed policy rule ${id}`);
      };
    }
    case 'list': {
      onlyFlags(args, lists, what, []);
      positionals(args, what, []);
      return async (ctx) => {
        const rules = await admin(ctx).list();
        if (ctx.json) return ctx.io.out(JSON.stringify(rules));
        if (rules.length === 0) return ctx.io.out('no policy rules (everything is denied)');
        ctx.io.out(table([['ID', 'CLIENTS', 'GATEWAYS', 'SERVICES', 'COMMENT'], ...rules.map((r) => [r.id, r.clients.join(','), r.gateways.join(','), r.services.join(','), r.comment ?? ''])]));
      };
    }
    case undefined:
      throw new UsageError('policy: missing subcommand (add, remove, list)');
    default:
      throw new UsageError(`policy: unknown subcommand ${JSON.stringify(sub)} (add, remove, list)`);
  }
}

function auditCmd(args: ParsedArgs, lists: Map<string, string[]>): Exec {
  const sub = args.positionals[1];
  if (sub !== 'tail') throw new UsageError(sub === undefined ? 'audit: missing subcommand (tail)' : `audit: unknown subcommand ${JSON.stringify(sub)} (tail)`);
  onlyFlags(args, lists, 'audit tail', ['count']);
  positionals(args, 'audit tail', []);
  const n = intFlag(args, 'count', 1, 100_000) ?? 20;
  return async (ctx) => {
    const entries = await ctx.store.tailAudit(n);
    if (ctx.json) return ctx.io.out(JSON.stringify(entries));
    // One JSON object per line: structured, and greppable.
    ctx.io.out(entries.length === 0 ? 'no audit events' : entries.map((e) => JSON.stringify({ id: e.id, ...e.event })).join('\n'));
  };
}

/** master-key commands: `generate` needs no store; the others return an Exec. */
function masterKeyCmd(args: ParsedArgs, lists: Map<string, string[]>): { generate: string } | Exec {
  const sub = args.positionals[1];
  const what = `master-key ${sub}`;
  if (sub === 'generate') {
    onlyFlags(args, lists, what, ['out']);
    positionals(args, what, []);
    const out = args.values.get('out');
    if (out === undefined) throw new UsageError(`${what}: --out FILE is required`);
    return { generate: out };
  }
  if (sub === 'status') {
    onlyFlags(args, lists, what, []);
    positionals(args, what, []);
    return async (ctx) => {
      const perKey: Record<string, number> = {};
      for (const p of await ctx.store.listPrincipals()) for (const k of p.value.keys) perKey[k.masterKeyId] = (perKey[k.masterKeyId] ?? 0) + 1;
      const status = { store: ctx.store.description, masterKeyId: ctx.meta.value.masterKeyId, masterKeyVersion: ctx.meta.value.masterKeyVersion, loaded: ctx.ring.ids, keysPerMasterKey: perKey };
      ctx.io.out(
        ctx.json
          ? JSON.stringify(status)
          : [
              `store           ${status.store}`,
              `master key      ${status.masterKeyId} (version ${status.masterKeyVersion})`,
              `loaded          ${status.loaded.join(', ')}`,
              ...Object.entries(perKey).map(([id, n]) => `keys sealed     ${n} under ${id}`),
            ].join('\n'),
      );
    };
  }
  if (sub === 'rotate') {
    onlyFlags(args, lists, what, ['new-key-file']);
    positionals(args, what, []);
    const file = args.values.get('new-key-file');
    if (file === undefined) throw new UsageError(`${what}: --new-key-file FILE is required`);
    return (ctx) => rotateMasterKey(ctx, file);
  }
  throw new UsageError(sub === undefined ? 'master-key: missing subcommand (generate, rotate, status)' : `master-key: unknown subcommand ${JSON.stringify(sub)} (generate, rotate, status)`);
}

function generateMasterKey(out: string, io: AdminIo, json: boolean): void {
  const key = io.random(MASTER_KEY_LEN);
  try {
    writeMasterKeyFile(out, key);
    const id = makeMasterKey(getBackend('node'), key).id;
    io.out(json ? JSON.stringify({ file: out, masterKeyId: id }) : `wrote master key ${id} to ${out} (mode 0600)`);
  } finally {
    key.fill(0);
  }
}

/**
 * Re-seals every principal key under the key in `file` (created when missing), then records it
 * in the store meta. Safe to run again after a crash: it finishes what is left.
 */
async function rotateMasterKey(ctx: Ctx, file: string): Promise<void> {
  const { io } = ctx;
  const backend = getBackend(ctx.cfg.cryptoBackend);
  let created = false;
  if (!fs.existsSync(file)) {
    const key = io.random(MASTER_KEY_LEN);
    writeMasterKeyFile(file, key);
    key.fill(0);
    created = true;
  }
  const next = loadMasterKeyFile(backend, file);
  const from = ctx.meta.value.masterKeyId;
  // Unseal with every loaded key, seal with the new one.
  const ring = new Ring(backend, next, ctx.ring.keys);
  const admin = new PrincipalAdmin(ctx.store, ring, { now: io.now, random: io.random, graceMs: ctx.cfg.graceMs });
  const done = await write('the re-wrap', 'kdc-admin master-key status', () => admin.rewrapAll());
  let version = ctx.meta.value.masterKeyVersion;
  if (next.id !== from) {
    version++;
    const meta: StoreMeta = { ...ctx.meta.value, masterKeyId: next.id, masterKeyVersion: version, masterKeyCheck: ring.makeCheck(io.random), updatedAt: io.now() };
    const r = await write('the master key record', 'kdc-admin master-key status', () => ctx.store.putMeta(meta, ctx.meta.revision));
    if (!r.ok) throw new Error('the store meta record changed meanwhile (another rotation?); run master-key status, then rotate again');
    await audit(ctx, 'master-key.rotate', { from, to: next.id, principals: done.principals });
  }
  const result = { from, to: next.id, version, principals: done.principals, keys: done.keys, file, created };
  io.out(
    ctx.json
      ? JSON.stringify(result)
      : [
          next.id === from
            ? `master key ${next.id} already is the store's; re-sealed ${done.keys} remaining keys of ${done.principals} principals`
            : `re-sealed ${done.keys} keys of ${done.principals} principals under master key ${next.id}${created ? ` (new, written to ${file})` : ''}`,
          `next: in every KDC config set masterKey.file to ${file} and put the old key in masterKey.additional,`,
          'restart the KDCs, then drop the old key from masterKey.additional.',
        ].join('\n'),
  );
}

export async function runKdcAdmin(argv: string[], io: AdminIo = defaultIo()): Promise<number> {
  const { args, lists } = splitArgs(argv);
  const json = args.booleans.has('json');
  const configPath = args.values.get('config') ?? io.env.CIPHERGATE_KDC_CONFIG ?? DEFAULT_CONFIG_PATH;
  const group = args.positionals[0];
  // Every command is validated before anything is read or written.
  let exec: Exec;
  switch (group) {
    case 'init':
      onlyFlags(args, lists, 'init', []);
      if (args.positionals.length > 1) throw new UsageError(`init: unexpected argument ${JSON.stringify(args.positionals[1])}`);
      await init(configPath, io, json);
      return 0;
    case 'principal':
      exec = principalCmd(args, lists);
      break;
    case 'policy':
      exec = policyCmd(args, lists);
      break;
    case 'audit':
      exec = auditCmd(args, lists);
      break;
    case 'master-key': {
      const mk = masterKeyCmd(args, lists);
      if ('generate' in mk) {
        generateMasterKey(mk.generate, io, json);
        return 0;
      }
      exec = mk;
      break;
    }
    case undefined:
      throw new UsageError('missing command (init, principal, policy, audit, master-key)');
    default:
      throw new UsageError(`unknown command ${JSON.stringify(group)} (init, principal, policy, audit, master-key)`);
  }
  await withContext(configPath, io, json, exec);
  return 0;
}

export const command: Command = {
  name: 'kdc-admin',
  summary: 'administer the KDC: principals, keys, policy, audit, master key',
  usage,
  run: (argv) => runKdcAdmin(argv),
};
