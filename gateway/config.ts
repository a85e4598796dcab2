// The gateway daemon's config file (JSON) and its validator. Every problem is reported at once
// with the path of the field (`services[1].endpoint: port 0 in '10.0.0.5:0' is not 1..65535`);
// unknown fields are problems too, to catch typos. Relative paths are relative to the config
// file. Only keyFile and services are required.
//
// {
//   "keyFile": "gateway.key",                 // exported by `ciphergate kdc-admin principal export`; mode 0600
//   "principal": "gw1.example",               // optional; must equal the key file's principal
//   "mode": "router",                         // "router" | "host" | "bridge"
//   "services": [ { "endpoint": "10.0.2.0/24:80", "mode": "require" } ],   // mode "require" | "optional"
//   "kdc": { "endpoints": ["10.0.3.2:7391"], "timeoutMs": 1000 },           // endpoints: default the key file's
//   "nfqueue": { "queue": 0, "workers": 1, "maxQueueLen": 8192 },  // router/host: queues queue..queue+workers-1
//   "bridge": { "clientInterface": "eth1", "serverInterface": "eth2" },     // bridge mode only, required there
//   "dataInterfaces": ["eth1", "eth2"],       // offloads checked at start; bridge: default both bridge interfaces
//   "agentPort": 7390,
//   "option": { "kind": 253, "exid": 17223 },
//   "timers": { "keyingTimeoutMs": 1500, "lingerMs": 60000, "idleTimeoutMs": 300000, "refusedHoldMs": 5000 },
//   "limits": { "maxFlows": 65536, "maxPendingKeyings": 4096, "maxKdcInFlight": 1024 },
//   "metrics": "127.0.0.1:9392",              // null: off
//   "control": "/run/ciphergate/gateway.sock",// null: off
//   "cryptoBackend": "node",                  // "node" | "noble"
//   "log": { "level": "info" }                // debug | info | warn | error
// }
import {
  type ConfiguredEndpoint,
  DAEMON_COMMON_FIELDS,
  type DaemonCommon,
  type ParseOptions,
  type ReadKey,
  checkPrincipal,
  daemonCommon,
  engineRules,
  endpointList,
  interfaceName,
  keyFile,
  versionedKey,
} from '../common/config/daemon';
import { loadDaemonConfig } from '../common/config/file';
import { type HostPort, Walker, parseHostPort } from '../common/config/walker';
import type { VersionedKey } from '../common/protocol/ticket';
import { loadKeyFile } from '../kdc/key-file';
import { DEFAULT_LIMITS, DEFAULT_TIMERS } from '../pipeline/setup';
import { queueRange } from '../runtime/kernel-queue';
import type { GatewayEngineConfig, ServiceMode } from './engine';

export const DEFAULT_GATEWAY_CONFIG_PATH = '/etc/ciphergate/gateway.json';

export type GatewayMode = 'router' | 'host' | 'bridge';

export interface GatewayConfig extends DaemonCommon {
  /** Absolute path of the key file. */
  keyFile: string;
  principal: string;
  key: VersionedKey;
  mode: GatewayMode;
  services: ConfiguredEndpoint<ServiceMode>[];
  kdc: { endpoints: HostPort[]; timeoutMs: number };
  /** Router and host mode; null in bridge mode. */
  nfqueue: { queue: number; workers: number; maxQueueLen: number } | null;
  /** Bridge mode; null otherwise. */
  bridge: { clientInterface: string; serverInterface: string } | null;
  agentPort: number;
  timers: GatewayEngineConfig['timers'];
  limits: GatewayEngineConfig['limits'];
}

const FIELDS = ['keyFile', 'principal', 'mode', 'services', 'kdc', 'nfqueue', 'bridge', 'agentPort', 'timers', 'limits', ...DAEMON_COMMON_FIELDS];

const TIMERS = {
  keyingTimeoutMs: [100, 60_000, DEFAULT_TIMERS.keyingTimeoutMs],
  lingerMs: [0, 600_000, DEFAULT_TIMERS.lingerMs],
  idleTimeoutMs: [1000, 86_400_000, DEFAULT_TIMERS.idleTimeoutMs],
  refusedHoldMs: [0, 600_000, DEFAULT_TIMERS.refusedHoldMs],
} as const;

const LIMITS = {
  maxFlows: [1, 10_000_000, DEFAULT_LIMITS.maxFlows],
  maxPendingKeyings: [1, 1_000_000, DEFAULT_LIMITS.maxPendingKeyings],
  maxKdcInFlight: [1, 1_000_000, DEFAULT_LIMITS.maxKdcInFlight],
} as const;

/** Validates parsed config JSON; key files are read through readKey, paths resolve against baseDir. */
export function parseGatewayConfig(json: unknown, baseDir: string, readKey: ReadKey, opts: ParseOptions = {}): GatewayConfig {
  const w = new Walker(baseDir, opts.env);
  const top = w.top(json, FIELDS);

  const kf = keyFile(w, 'keyFile', top.keyFile, readKey);
  const principal = checkPrincipal(w, top.principal, kf?.key, kf?.file ?? '');
  const mode = w.oneOf<GatewayMode>('mode', top.mode, ['router', 'host', 'bridge'], 'router');

  const services = endpointList(w, 'services', top.services, ['mode'], (at, o) => w.oneOf<ServiceMode>(`${at}.mode`, o.mode, ['require', 'optional'], 'require'));

  const kdcO = w.obj('kdc', top.kdc, ['endpoints', 'timeoutMs']) ?? {};
  let kdcEndpoints: HostPort[];
  if (kdcO.endpoints !== undefined) kdcEndpoints = w.list('kdc.endpoints', kdcO.endpoints, '"host:port"', (at, e) => w.hostPort(at, e), 64);
  else {
    kdcEndpoints = (kf?.key.kdc ?? []).flatMap((e) => {
      const hp = parseHostPort(e);
      return typeof hp === 'string' ? [] : [hp];
    });
    if (kf !== undefined && kdcEndpoints.length === 0) w.bad('kdc.endpoints', `required: key file ${kf.file} names no KDC (export it with --kdc HOST:PORT, or list them here)`);
  }
  const kdc = { endpoints: kdcEndpoints, timeoutMs: w.int('kdc.timeoutMs', kdcO.timeoutMs, 10, 60_000, 1000) };

  let nfqueue: GatewayConfig['nfqueue'] = null;
  let bridge: GatewayConfig['bridge'] = null;
  if (mode === 'bridge') {
    if (top.nfqueue !== undefined) w.bad('nfqueue', 'not used in bridge mode (frames are captured from the bridge interfaces)');
    if (top.bridge === undefined) w.bad('bridge', 'required in bridge mode: { "clientInterface": ..., "serverInterface": ... }');
    const b = w.obj('bridge', top.bridge, ['clientInterface', 'serverInterface']);
    if (b) {
      const pick = (k: string) => (b[k] === undefined ? w.bad(`bridge.${k}`, 'required') : interfaceName(w, `bridge.${k}`, b[k]));
      const [c, s] = [pick('clientInterface'), pick('serverInterface')];
      if (c !== undefined && c === s) w.bad('bridge.serverInterface', `must differ from bridge.clientInterface (${c})`);
      if (c !== undefined && s !== undefined) bridge = { clientInterface: c, serverInterface: s };
    }
  } else {
    if (top.bridge !== undefined) w.bad('bridge', `only used in bridge mode (mode is ${mode})`);
    nfqueue = queueRange(w, top.nfqueue, 0);
  }

  const common = daemonCommon(w, top, {
    metrics: { host: '127.0.0.1', port: 9392 },
    control: '/run/ciphergate/gateway.sock',
    dataInterfaces: bridge ? [bridge.clientInterface, bridge.serverInterface] : [],
  });
  if (bridge && top.dataInterfaces !== undefined) {
    for (const i of [bridge.clientInterface, bridge.serverInterface]) {
      if (!common.dataInterfaces.includes(i)) w.bad('dataInterfaces', `must include the bridge interface ${i} (its offloads matter most)`);
    }
  }

  const timers = w.ints('timers', top.timers, TIMERS);
  const limits = w.ints('limits', top.limits, LIMITS);
  if (limits.maxPendingKeyings > limits.maxFlows) w.bad('limits.maxPendingKeyings', `must not exceed limits.maxFlows (${limits.maxFlows})`);
  // Each held SYN keeps a place in its worker's kernel queue: if they could fill it, the kernel
  // would drop the packets of flows already keyed.
  if (nfqueue !== null && nfqueue.maxQueueLen <= limits.maxPendingKeyings) {
    w.bad('nfqueue.maxQueueLen', `must be above limits.maxPendingKeyings (${limits.maxPendingKeyings}): held SYNs alone would fill the queue, and the kernel would drop keyed flows' packets`);
  }

  return w.result<GatewayConfig>(
    {
      keyFile: kf?.file ?? '',
      principal,
      key: kf ? versionedKey(kf.key) : { kvno: 0, key: new Uint8Array(0) },
      mode,
      services,
      kdc,
      nfqueue,
      bridge,
      agentPort: w.int('agentPort', top.agentPort, 1, 65535, 7390),
      timers,
      limits,
      ...common,
    },
    opts.where,
  );
}

/** Reads and validates a gateway config file; key files must be mode 0600. */
export function loadGatewayConfig(file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return loadDaemonConfig(file, parseGatewayConfig, loadKeyFile, env);
}

/** What the gateway engine takes from the config. */
export function toEngineConfig(c: GatewayConfig): GatewayEngineConfig {
  return {
    principal: c.principal,
    key: c.key,
    services: engineRules(c.services),
    option: c.option,
    agentPort: c.agentPort,
    limits: c.limits,
    timers: c.timers,
  };
}
