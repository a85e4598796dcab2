// The agent across several cores (runtime/worker-pool.ts): one worker process per NFQUEUE
// number, each running an AgentDaemon on its queue. Gateways dial one key-delivery port, and
// one connection multiplexes the sessions of flows that different workers hold, so the primary
// owns the listener and relays: each worker draws its flows' connIds with connId mod workers =
// its index (common/protocol/conn-id.ts), and the primary routes every message by that. Keys
// never cross: a worker derives its flows' keys from the TICKET, sealed under the agent's key.
//
// A relayed message costs one IPC hop each way (about 0.1-0.2 ms on a busy two-core host), which
// is why one worker (no primary) stays the default.
import { formatHostPort } from '../common/config/walker';
import { connIdWorker } from '../common/protocol/conn-id';
import { KdErrorCode, type KdMessage, KdType, decodeKdMessage, encodeKdMessage } from '../common/protocol/kd-messages';
import type { Log } from '../runtime/daemon-kit';
import { KdListener } from '../runtime/kd-transport';
import { WorkerPool, runPoolPrimary, runPoolWorker, toPrimary } from '../runtime/worker-pool';
import { type AgentConfig, loadAgentConfig } from './config';
import { AGENT_FIXED_ON_RELOAD, AgentDaemon, agentClosedSteering, agentSteering } from './daemon';

/** Primary -> worker: a message from a gateway (encoded: a compact copy, not a view of a socket buffer), or its session's end. */
type ToAgentWorker = { kind: 'kd'; bytes: Uint8Array } | { kind: 'kd-failure'; connId: bigint; reason: string };
/** Worker -> primary: a message for a gateway, or the end of a flow's session. */
type FromAgentWorker = { kind: 'kd-send'; connId: bigint; message: KdMessage } | { kind: 'kd-close'; connId: bigint };

/** In a worker process: one AgentDaemon on the worker's queue, key delivery through the primary. */
export function runAgentWorker(file: string, log: Log): Promise<void> {
  return runPoolWorker<AgentDaemon>({
    log,
    start: (index) => {
      const config = loadAgentConfig(file);
      const kd = {
        send: (connId: bigint, message: KdMessage) => toPrimary({ kind: 'kd-send', connId, message } satisfies FromAgentWorker),
        close: (connId: bigint) => toPrimary({ kind: 'kd-close', connId } satisfies FromAgentWorker),
      };
      return AgentDaemon.start(config, log, { index, count: config.nfqueue.workers, kd });
    },
    reload: (daemon) => daemon.reload(loadAgentConfig(file)),
    onMessage: (daemon, body) => {
      const m = body as ToAgentWorker;
      if (m.kind === 'kd-failure') return daemon.kdFailure(m.connId, m.reason);
      const decoded = decodeKdMessage(m.bytes);
      // The primary encoded what it had decoded: this cannot fail unless the two builds differ.
      if (decoded.ok) daemon.kdMessage(decoded.value.message.connId, decoded.value.message);
      else log('error', 'kd-relay-undecodable', { error: decoded.error.detail });
    },
  });
}

/** In the primary: the workers, the key-delivery listener and relay, the rules and the operator endpoints. */
export async function runAgentPrimary(file: string, config: AgentConfig, log: Log): Promise<void> {
  const count = config.nfqueue.workers;
  // A flow whose worker is gone: tell its gateway now (it refuses the connection) rather than
  // let it wait out the keying timeout, and forget the session.
  const lost = (connId: bigint) => {
    listener.send(connId, { type: KdType.Error, connId, code: KdErrorCode.UnknownConnection, reason: 'agent worker restarting' });
    listener.close(connId);
  };
  const pool = new WorkerPool(
    count,
    log,
    (_index, body) => {
      const m = body as FromAgentWorker;
      if (m.kind === 'kd-send') listener.send(m.connId, m.message);
      else listener.close(m.connId);
    },
    (index) => {
      for (const connId of listener.flowsWhere((c) => connIdWorker(c, count) === index)) lost(connId);
    },
  );
  const listener = new KdListener({
    message: (connId, message) => {
      if (pool.send(connIdWorker(connId, count), { kind: 'kd', bytes: encodeKdMessage(message) } satisfies ToAgentWorker)) return;
      if (message.type === KdType.Error) listener.close(connId);
      else lost(connId);
    },
    failure: (connId, reason) => void pool.send(connIdWorker(connId, count), { kind: 'kd-failure', connId, reason } satisfies ToAgentWorker),
  });
  await listener.listen(config.listen.host, config.listen.port);
  try {
    await runPoolPrimary({
      role: 'agent',
      pool,
      log,
      config,
      load: () => loadAgentConfig(file),
      fixedOnReload: AGENT_FIXED_ON_RELOAD,
      rules: (c) => ({ running: agentSteering(c), closed: agentClosedSteering(c) }),
      // The workers hold no listener: the key-delivery connections are the primary's.
      merge: (_parts, c) => ({ keyDelivery: { listen: formatHostPort(c.listen), connections: listener.connections } }),
      stopTimeoutMs: () => 3000,
      started: { principal: config.principal, queues: `${config.nfqueue.queue}..${config.nfqueue.queue + count - 1}`, listen: formatHostPort(config.listen) },
      onStopped: () => listener.closeAll(),
    });
  } catch (e) {
    await listener.closeAll();
    throw e;
  }
}
