import * as fs from 'node:fs';
import { type HistogramSnapshot, quantileBound } from '../../common/engine/latency-histogram';
import { readControl } from '../../runtime/control';
import { parseArgs } from '../args';
import { type Command, UsageError } from '../command';

const DEFAULT_SOCKETS = ['/run/ciphergate/gateway.sock', '/run/ciphergate/agent.sock'];

const usage = `usage: ciphergate status [--json] [--socket PATH ...]

Shows each running gateway or agent on this host, in the spirit of \`wg show\`: its principal and
mode, keys held, keyings in progress, every flow with its state, and the engine's counters.
Key material is never shown (the daemons do not put it in the status).

--socket PATH   a daemon's control socket (repeatable; default: ${DEFAULT_SOCKETS.join(', ')} where present)
--json          print the status documents as one JSON array

Exit 1 when no daemon answers.`;

interface FlowLine {
  connId: string;
  state: string;
  client: string;
  server: string;
  ageMs: number;
  keyed: boolean;
  lingering: boolean;
  clientPrincipal?: string | null;
}

type Doc = Record<string, unknown> & { role: string; flows: FlowLine[]; counters: Record<string, number> };

export function formatStatus(d: Doc): string {
  const lines: string[] = [];
  const who = d.role === 'gateway' ? `gateway ${d.principal} (kvno ${d.kvno}, ${d.mode} mode)` : `agent ${d.principal} (kvnos ${(d.kvnos as number[]).join(', ')})`;
  lines.push(`${who}, pid ${d.pid}, up ${d.uptimeS}s, steering ${d.steering}`);
  lines.push(`  keys held: ${d.keyedFlows}   keyings in progress: ${d.keyingsInProgress}   flows: ${d.flowCount}   held packets: ${d.held}`);
  const workers = d.byWorker as { pid: number; flows: number; keyedFlows: number; packets: number }[] | undefined;
  if (workers) lines.push(`  workers: ${workers.map((w) => `pid ${w.pid} (${w.flows} flows, ${w.keyedFlows} keys, ${w.packets} packets)`).join(', ')}`);
  if (d.role === 'gateway') {
    const kdc = d.kdc as { endpoints: string[]; inFlight: number };
    lines.push(`  kdc: ${kdc.endpoints.join(', ')} (${kdc.inFlight} in flight)   key-delivery connections: ${(d.keyDelivery as { connections: number }).connections}`);
    const keying = d.keying as HistogramSnapshot | null | undefined;
    if (keying && keying.count > 0) {
      const q = (x: number) => {
        const bound = quantileBound(keying, x) as number;
        return Number.isFinite(bound) ? `<= ${bound} ms` : `> ${keying.boundsMs[keying.boundsMs.length - 1]} ms`;
      };
      lines.push(`  keying (SYN held until cipher sync): ${keying.count} done, mean ${(keying.sumMs / keying.count).toFixed(1)} ms, p50 ${q(0.5)}, p99 ${q(0.99)}`);
    }
    for (const s of d.services as { endpoint: string; mode: string }[]) lines.push(`  service ${s.endpoint} ${s.mode}`);
  } else {
    const kd = d.keyDelivery as { listen: string; connections: number };
    lines.push(`  key delivery: listening on ${kd.listen} (${kd.connections} connections)`);
    for (const s of d.destinations as { endpoint: string; mode: string; gateway?: string }[]) lines.push(`  destination ${s.endpoint} ${s.mode}${s.gateway ? ` via ${s.gateway}` : ''}`);
  }
  for (const f of d.flows) {
    const flags = [f.keyed ? 'keyed' : 'no keys', f.lingering ? 'lingering' : '', f.clientPrincipal ? `client ${f.clientPrincipal}` : ''].filter(Boolean).join(', ');
    lines.push(`  flow ${f.connId.padStart(20)}  ${f.client} -> ${f.server}  ${f.state}  ${(f.ageMs / 1000).toFixed(1)}s  ${flags}`);
  }
  const counters = Object.entries(d.counters).filter(([, v]) => v > 0);
  if (counters.length > 0) lines.push(`  counters: ${counters.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const q = d.queue as Record<string, number> | null | undefined;
  if (q) lines.push(`  nfqueue: ${q.packets} packets in ${q.batches} batches (${q.wakes} wake-ups), ${q.verdicts} verdicts in ${q.sends} sends, ${q.errors} errors`);
  const k = d.kernelQueue as Record<string, number> | null | undefined;
  if (k) lines.push(`  kernel queue: ${k.waiting} waiting, dropped ${k.queueFull} (queue full) and ${k.socketFull} (socket buffer full)`);
  return lines.join('\n');
}

export const command: Command = {
  name: 'status',
  summary: 'show running gateways and agents: flows, keys, keyings, counters',
  usage,
  async run(argv) {
    const args = parseArgs(argv, { values: ['socket'], booleans: ['json'], repeatable: ['socket'] });
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    const given = args.all?.get('socket') ?? [];
    const sockets = given.length > 0 ? given : DEFAULT_SOCKETS.filter((s) => fs.existsSync(s));
    if (sockets.length === 0) {
      process.stderr.write(`ciphergate status: no daemon control socket found (looked for ${DEFAULT_SOCKETS.join(', ')}); pass --socket PATH\n`);
      return 1;
    }
    const docs: Doc[] = [];
    let failed = false;
    for (const s of sockets) {
      try {
        docs.push((await readControl(s)) as Doc);
      } catch (e) {
        failed = true;
        process.stderr.write(`ciphergate status: ${(e as Error).message}\n`);
      }
    }
    if (args.booleans.has('json')) process.stdout.write(JSON.stringify(docs, null, 2) + '\n');
    else process.stdout.write(docs.map(formatStatus).join('\n\n') + '\n');
    return failed && docs.length === 0 ? 1 : 0;
  },
};
