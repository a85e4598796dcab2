// The client-agent daemon's config file (JSON) and its validator: every problem at once, each with
// the path of its field; unknown fields are problems too. Relative paths are relative to the
// config file. Only keyFiles and destinations are required.
//
// {
//   "keyFiles": ["agent.key"],                // current first; an older kvno of the same principal may follow (rotation)
//   "principal": "client1.example",           // optional; must equal the key files' principal
//   "destinations": [ { "endpoint": "10.0.2.2:80", "mode": "require", "gateway": "gw1.example" } ],
//                                             // mode "require" | "opportunistic"; gateway: only its tickets count
//   "listen": "0.0.0.0:7390",                 // key-delivery listener (the gateways' agentPort)
//   "nfqueue": { "queue": 10, "workers": 1, "maxQueueLen": 8192 },  // queues queue..queue+workers-1
//   "dataInterfaces": [],                     // offloads checked at start
//   "option": { "kind": 253, "exid": 17223 },
//   "timers": { "lingerMs": 60000, "idleTimeoutMs": 300000, "maxClockSkewMs": 300000 },
//   "limits": { "maxFlows": 65536 },
//   "metrics": "127.0.0.1:9393",              // null: off
//   "control": "/run/ciphergate/agent.sock",  // null: off
//   "cryptoBackend": "node",
//   "log": { "level": "info" }
// }
import {
  type ConfiguredEndpoint,
  DAEMON_COMMON_FIELDS,
  type DaemonCommon,
  type LoadedKey,
  type ParseOptions,
  type ReadKey,
  checkPrincipal,
  daemonCommon,
  engineRules,
  endpointList,
  keyFile,
  versionedKey,
} from '../common/config/daemon';
import { loadDaemonConfig } from '../common/config/file';
import { type HostPort, Walker } from '../common/config/walker';
import type { VersionedKey } from '../common/protocol/ticket';
import { loadKeyFile } from '../kdc/key-file';
import { principalNameProblem } from '../kdc/principals';
import { DEFAULT_LIMITS, DEFAULT_TIMERS } from '../pipeline/setup';
import { queueRange } from '../runtime/kernel-queue';
import type { AgentEngineConfig, Destination, DestinationMode } from './engine';

export const DEFAULT_AGENT_CONFIG_PATH = '/etc/ciphergate/agent.json';

export interface AgentConfig extends DaemonCommon {
  /** Absolute paths, current key first. */
  keyFiles: string[];
  principal: string;
  /** Same order as keyFiles. */
  keys: VersionedKey[];
  destinations: ConfiguredEndpoint<Destination>[];
  listen: HostPort;
  nfqueue: { queue: number; workers: number; maxQueueLen: number };
  timers: AgentEngineConfig['timers'];
  limits: AgentEngineConfig['limits'];
}

const FIELDS = ['keyFiles', 'principal', 'destinations', 'listen', 'nfqueue', 'timers', 'limits', ...DAEMON_COMMON_FIELDS];

const TIMERS = {
  lingerMs: [0, 600_000, DEFAULT_TIMERS.lingerMs],
  idleTimeoutMs: [1000, 86_400_000, DEFAULT_TIMERS.idleTimeoutMs],
  maxClockSkewMs: [1000, 3_600_000, 300_000],
} as const;

/** Validates parsed config JSON; key files are read through readKey, paths resolve against baseDir. */
export function parseAgentConfig(json: unknown, baseDir: string, readKey: ReadKey, opts: ParseOptions = {}): AgentConfig {
  const w = new Walker(baseDir, opts.env);
  const top = w.top(json, FIELDS);

  const loaded: { file: string; key: LoadedKey }[] = [];
  if (top.keyFiles === undefined) w.bad('keyFiles', 'required');
  else
    w.list('keyFiles', top.keyFiles, 'key file paths, current first', (at, e) => {
      const k = keyFile(w, at, e, readKey);
      if (k === undefined) return undefined;
      const current = loaded[0];
      if (current === undefined) loaded.push(k);
      else if (k.key.principal !== current.key.principal) w.bad(at, `key file ${k.file} is for ${JSON.stringify(k.key.principal)}, not ${JSON.stringify(current.key.principal)} like ${current.file}`);
      else if (k.key.kvno >= current.key.kvno) w.bad(at, `kvno ${k.key.kvno} of ${k.file} is not older than kvno ${current.key.kvno} of ${current.file} (list the current key first)`);
      else if (loaded.some((l) => l.key.kvno === k.key.kvno)) w.bad(at, `kvno ${k.key.kvno} is listed twice`);
      else loaded.push(k);
      return k;
    }, 8);
  const principal = checkPrincipal(w, top.principal, loaded[0]?.key, loaded[0]?.file ?? '');

  const destinations = endpointList(w, 'destinations', top.destinations, ['mode', 'gateway'], (at, o): Destination => {
    const mode = w.oneOf<DestinationMode>(`${at}.mode`, o.mode, ['require', 'opportunistic'], 'require');
    const gateway = w.str(`${at}.gateway`, o.gateway);
    const problem = gateway === undefined ? null : principalNameProblem(gateway);
    if (problem) w.bad(`${at}.gateway`, problem);
    return gateway === undefined ? { mode } : { mode, gateway };
  });

  return w.result<AgentConfig>(
    {
      keyFiles: loaded.map((l) => l.file),
      principal,
      keys: loaded.map((l) => versionedKey(l.key)),
      destinations,
      listen: (top.listen === undefined ? undefined : w.hostPort('listen', top.listen)) ?? { host: '0.0.0.0', port: 7390 },
      nfqueue: queueRange(w, top.nfqueue, 10),
      timers: w.ints('timers', top.timers, TIMERS),
      limits: w.ints('limits', top.limits, { maxFlows: [1, 10_000_000, DEFAULT_LIMITS.maxFlows] }),
      ...daemonCommon(w, top, { metrics: { host: '127.0.0.1', port: 9393 }, control: '/run/ciphergate/agent.sock', dataInterfaces: [] }),
    },
    opts.where,
  );
}

/** Reads and validates an agent config file; key files must be mode 0600. */
export function loadAgentConfig(file: string, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  return loadDaemonConfig(file, parseAgentConfig, loadKeyFile, env);
}

/** What the agent engine takes from the config. */
export function toEngineConfig(c: AgentConfig): AgentEngineConfig {
  return {
    principal: c.principal,
    keys: c.keys,
    destinations: engineRules(c.destinations),
    option: c.option,
    limits: c.limits,
    timers: c.timers,
  };
}
