import type { BackendName } from '../../common/crypto/backend';
import { backendNames, isBackendName } from '../../common/crypto';
import { type EngineBenchResult, type EngineCase, runEngineBench } from '../../bench/engine';
import { defaultResultsDir, formatNumber, formatTable, writeResult } from '../../bench/report';
import type { LabMode } from '../../lab/topology';
import { parseArgs } from '../args';
import { type Command, UsageError } from '../command';

const DEFAULT_SECONDS = 2;
const DEFAULT_E2E_SECONDS = 4;

const usage = `usage:
  ciphergate bench engine [--json] [--seconds N] [--backend node|noble|all] [--out-dir DIR]
  ciphergate bench kdc [--json] [--seconds N] [--out-dir DIR]
  ciphergate bench e2e [--json] [--seconds N] [--modes router,host,bridge] [--workers 1,2] [--out-dir DIR]

engine   offline throughput of the engines on one core, in this process: a Buffer.copy
         baseline, pass-through (gateway, unprotected service) and protect + unprotect of an
         established, really keyed flow in each direction, at 64- and 1460-byte payloads.

kdc      issues/s and latency of one \`ciphergate kdc\` process (from dist/) over TCP, with a
         real redis-server on a free loopback port and with the embedded store, at 1, 16 and
         64 requests in flight, and open loop at half the target rate (and at half the rate
         measured, when lower); redis-benchmark -t get against the same Redis as a baseline
         (bench/kdc.ts). Targets: >= 20,000 issues/s; p99 < 2 ms at 10,000/s.

e2e      the real daemons in the network-namespace lab (root): iperf3 throughput (1 and 2
         streams), connect-plus-first-byte latency p50/p99 of sequential fresh connections,
         new connections/s (16 concurrent loops) and the CPU of the daemons, for the plain
         kernel path, a stunnel TLS 1.3 pair and ciphergate in each mode (bench/e2e.ts).
         Targets: throughput >= stunnel's; p50 overhead <= half of stunnel's; new
         connections/s >= 3x stunnel's. --seconds is per measurement (default ${DEFAULT_E2E_SECONDS});
         also writes e2e-latest.md.

--seconds N   timed seconds per case, after a short warm-up (default ${DEFAULT_SECONDS}).
--modes M     e2e: comma-separated ciphergate modes (default router,host,bridge; the router
              lab always runs, for the plain and stunnel baselines).
--workers W   e2e: comma-separated worker process counts for gateway and agent (default 1);
              each count gets a lab of its own per router/host mode, in the same run, e.g.
              --workers 1,2 (bridge mode is one process).
--backend B   crypto backend(s) for the protected cases: node, noble or all (default all).
--json        print the result as JSON instead of a table.
--out-dir D   where to write engine-<date>.json and engine-latest.json (default bench/results).

Gbit/s counts payload bytes only. Targets: pass-through >= 1,000,000 packets/s; protect +
unprotect >= 1 Gbit/s at 1460 bytes.`;

function backendsOf(value: string | undefined): BackendName[] {
  if (value === undefined || value === 'all') return [...backendNames];
  if (!isBackendName(value)) throw new UsageError(`--backend: '${value}' is not node, noble or all`);
  return [value];
}

function modesOf(value: string | undefined, known: readonly LabMode[]): LabMode[] {
  if (value === undefined) return [...known];
  const modes = value.split(',').map((m) => m.trim());
  const bad = modes.find((m) => !(known as readonly string[]).includes(m));
  if (bad !== undefined || modes.length === 0) throw new UsageError(`--modes: '${bad ?? value}' is not router, host or bridge`);
  return [...new Set(modes)] as LabMode[];
}

function workersOf(value: string | undefined): number[] {
  if (value === undefined) return [1];
  const counts = value.split(',').map((w) => w.trim());
  const bad = counts.find((w) => !/^[1-8]$/.test(w));
  if (bad !== undefined) throw new UsageError(`--workers: '${bad}' is not a worker count from 1 to 8`);
  return [...new Set(counts.map(Number))];
}

function secondsOf(value: string | undefined, fallback = DEFAULT_SECONDS): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d*\.?\d+$/.test(value) || !(n > 0) || n > 600) throw new UsageError(`--seconds: '${value}' is not a number of seconds in (0, 600]`);
  return n;
}

function table(result: EngineBenchResult): string {
  const baseline = new Map(result.cases.filter((c) => c.name === 'memcpy').map((c) => [c.payloadBytes, c.nsPerPacket]));
  const vsCopy = (c: EngineCase): string => {
    const base = baseline.get(c.payloadBytes);
    return base === undefined || c.name === 'memcpy' ? '' : `${formatNumber(c.nsPerPacket / base, 1)}x`;
  };
  const rows = formatTable<EngineCase>(
    [
      { title: 'case', cell: (c) => c.name },
      { title: 'backend', cell: (c) => c.backend },
      { title: 'payload', align: 'right', cell: (c) => `${c.payloadBytes} B` },
      { title: 'packets/s', align: 'right', cell: (c) => formatNumber(c.packetsPerSecond) },
      { title: 'Gbit/s', align: 'right', cell: (c) => c.gbitPerSecond.toFixed(3) },
      { title: 'ns/packet', align: 'right', cell: (c) => formatNumber(c.nsPerPacket, 1) },
      { title: 'vs memcpy', align: 'right', cell: vsCopy },
      { title: 'cpu', align: 'right', cell: (c) => `${Math.round(c.cpuShare * 100)}%` },
    ],
    result.cases,
  );
  const yes = (b: boolean): string => (b ? 'met' : 'NOT met');
  const t = result.targets;
  const lines = [
    `engine bench: ${result.node}, ${result.cpu}, one core, ${result.date}`,
    '',
    rows,
    '',
    'cpu = on-CPU time of the bench thread / wall time: well under 100% means the core was shared.',
    `pass-through >= ${formatNumber(t.passThroughPacketsPerSecond)} packets/s: ${yes(result.meets.passThrough)}`,
  ];
  for (const [backend, met] of Object.entries(result.meets.protected)) {
    lines.push(`protect+unprotect >= ${t.protectedGbitPerSecond} Gbit/s at ${t.protectedPayloadBytes} B (${backend}): ${yes(met)}`);
  }
  return lines.join('\n');
}

export const command: Command = {
  name: 'bench',
  summary: 'measure engine throughput (bench engine), KDC issues/s and latency (bench kdc), and the live datapath against plain TCP and stunnel (bench e2e)',
  usage,
  async run(argv) {
    const args = parseArgs(argv, { values: ['seconds', 'backend', 'out-dir', 'modes', 'workers'], booleans: ['json'] });
    const [what, ...extra] = args.positionals;
    if (what !== 'engine' && what !== 'kdc' && what !== 'e2e') throw new UsageError(what === undefined ? 'which bench? (engine, kdc, e2e)' : `unknown bench '${what}' (engine, kdc, e2e)`);
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    if (what === 'e2e') {
      const { e2eBenchCommand, E2E_MODES } = await import('../../bench/e2e');
      return e2eBenchCommand({
        seconds: secondsOf(args.values.get('seconds'), DEFAULT_E2E_SECONDS),
        modes: modesOf(args.values.get('modes'), E2E_MODES),
        workers: workersOf(args.values.get('workers')),
        json: args.booleans.has('json'),
        outDir: args.values.get('out-dir') ?? defaultResultsDir(),
      });
    }
    if (what === 'kdc') {
      const { kdcBenchCommand } = await import('../../bench/kdc');
      return kdcBenchCommand({ seconds: secondsOf(args.values.get('seconds')), json: args.booleans.has('json'), outDir: args.values.get('out-dir') ?? defaultResultsDir() });
    }
    const json = args.booleans.has('json');
    const result = runEngineBench({
      seconds: secondsOf(args.values.get('seconds')),
      backends: backendsOf(args.values.get('backend')),
      onCase: (name, backend, bytes) => {
        if (process.stderr.isTTY) process.stderr.write(`  ${name} ${backend} ${bytes} B...\n`);
      },
    });
    const written = writeResult(args.values.get('out-dir') ?? defaultResultsDir(), 'engine', new Date(result.date), result);
    if (json) console.log(JSON.stringify(result, null, 2));
    else console.log(`${table(result)}\n\nwrote ${written.dated}\n  and ${written.latest}`);
    return 0;
  },
};
