// What a scrape of a daemon's /metrics and `ciphergate status` show of the NFQUEUE binding's own
// counters and of the kernel's figures for the queues (runtime/engine-metrics.ts,
// runtime/kernel-queue.ts, cli/commands/status.ts), from a status document.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { registryFromStatus, type StatusFigures } from '../../runtime/engine-metrics';
import { parseKernelQueueTable, readKernelQueues } from '../../runtime/kernel-queue';
import { formatStatus } from '../../cli/commands/status';
import { LatencyHistogram } from '../../common/engine/latency-histogram';
import type { GatewayConfig } from '../../gateway/config';
import { gatewayFields } from '../../gateway/workers';
import { mergeWorkerStatuses } from '../../runtime/worker-pool';

const figures = (queue: Record<string, number> | null, kernelQueue: Record<string, number> | null = null): StatusFigures => ({
  counters: { 'keyed:ok': 2 },
  flowStates: { established: 1 },
  keyedFlows: 1,
  keyingsInProgress: 0,
  datapath: { accepted: 10 },
  queue,
  kernelQueue,
  keyDelivery: { connections: 1 },
  kdc: { inFlight: 0 },
});

test('/metrics: binding counters grow by what grew between scrapes; pending verdict bytes is a gauge', async () => {
  let status = figures({ packets: 100, batches: 7, wakes: 7, verdicts: 100, sends: 7, errors: 0, pending: 0 });
  const registry = registryFromStatus('gateway', () => status);
  const first = await registry.metrics();
  expect(first).toContain('ciphergate_gateway_nfqueue_events_total{event="batches"} 7');
  expect(first).toContain('ciphergate_gateway_nfqueue_events_total{event="packets"} 100');
  expect(first).not.toContain('event="pending"');
  status = figures({ packets: 164, batches: 8, wakes: 8, verdicts: 150, sends: 7, errors: 1, pending: 700 });
  const second = await registry.metrics();
  expect(second).toContain('ciphergate_gateway_nfqueue_events_total{event="packets"} 164');
  expect(second).toContain('ciphergate_gateway_nfqueue_events_total{event="errors"} 1');
  expect(second).toContain('ciphergate_gateway_nfqueue_pending_verdict_bytes 700');
});

test('/metrics and status without a native binding (the npm fallback, bridge mode): no queue figures', async () => {
  const text = await registryFromStatus('agent', () => figures(null)).metrics();
  expect(text).not.toMatch(/nfqueue_events_total\{/);
  expect(text).toContain('ciphergate_agent_nfqueue_pending_verdict_bytes 0');
  const doc = { role: 'agent', principal: 'a', kvnos: [1], pid: 1, uptimeS: 1, steering: 'nft', flows: [], destinations: [], ...figures(null), keyDelivery: { listen: 'x', connections: 0 } };
  expect(formatStatus(doc)).not.toContain('nfqueue:');
  expect(formatStatus({ ...doc, queue: { packets: 5, batches: 2, wakes: 2, verdicts: 5, sends: 2, errors: 0, pending: 0 } })).toContain('nfqueue: 5 packets in 2 batches (2 wake-ups), 5 verdicts in 2 sends, 0 errors');
});

// The table as this kernel prints it (the header-less seq_show of nfnetlink_queue).
const TABLE = ['    0    917     0 2 65531     0     0   298924  1', '   10  -4113     3 2 65531    12     5       40  1', 'garbage line', ''].join('\n');

test('the kernel queue table: waiting, dropped when full, dropped at the socket, per queue; other lines skipped', () => {
  const t = parseKernelQueueTable(TABLE);
  expect([...t.keys()]).toEqual([0]);
  expect(t.get(0)).toEqual({ waiting: 0, queueFull: 0, socketFull: 0 });
  const ok = parseKernelQueueTable(TABLE.replace('-4113', '4113'));
  expect(ok.get(10)).toEqual({ waiting: 3, queueFull: 12, socketFull: 5 });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cg-kq-')), 'nfnetlink_queue');
  fs.writeFileSync(file, TABLE.replace('-4113', '4113'));
  expect(readKernelQueues([10, 11, 0], file)).toEqual([{ waiting: 3, queueFull: 12, socketFull: 5 }, { waiting: 0, queueFull: 0, socketFull: 0 }]);
  expect(readKernelQueues([0], `${file}.missing`)).toBeNull();
});

test('/metrics and status: kernel drops by reason as a counter, packets waiting as a gauge', async () => {
  let status = figures(null, { waiting: 3, queueFull: 0, socketFull: 0 });
  const registry = registryFromStatus('gateway', () => status);
  const first = await registry.metrics();
  expect(first).toContain('ciphergate_gateway_nfqueue_kernel_waiting_packets 3');
  expect(first).not.toMatch(/nfqueue_kernel_drops_total\{reason="queue-full"\} [1-9]/);
  status = figures(null, { waiting: 0, queueFull: 12, socketFull: 5 });
  const second = await registry.metrics();
  expect(second).toContain('ciphergate_gateway_nfqueue_kernel_drops_total{reason="queue-full"} 12');
  expect(second).toContain('ciphergate_gateway_nfqueue_kernel_drops_total{reason="socket-full"} 5');
  expect(second).toContain('ciphergate_gateway_nfqueue_kernel_waiting_packets 0');
  const doc = { role: 'agent', principal: 'a', kvnos: [1], pid: 1, uptimeS: 1, steering: 'nft', flows: [], destinations: [], ...figures(null), keyDelivery: { listen: 'x', connections: 0 } };
  expect(formatStatus(doc)).not.toContain('kernel queue:');
  expect(formatStatus({ ...doc, kernelQueue: { waiting: 2, queueFull: 12, socketFull: 5 } })).toContain('kernel queue: 2 waiting, dropped 12 (queue full) and 5 (socket buffer full)');
});

test('a gateway with workers: the primary sums the binding counters and kernel figures of every worker', () => {
  const worker = (pid: number, n: number) => ({
    role: 'gateway',
    pid,
    ...figures({ packets: n, batches: 1, wakes: 1, verdicts: n, sends: 1, errors: 0, pending: 0 }, { waiting: 1, queueFull: n, socketFull: 0 }),
    flows: [],
    kdc: { inFlight: 0 },
    keying: keyingOf([n]),
  });
  const config = { nfqueue: { queue: 0, workers: 2, maxQueueLen: 4096 }, kdc: { endpoints: [{ host: '10.0.3.2', port: 7391 }] } } as unknown as GatewayConfig;
  const parts = [worker(11, 5), worker(12, 7)];
  const merged = { ...mergeWorkerStatuses(parts, 'nft'), ...gatewayFields(parts, config) };
  expect(merged.workers).toEqual([11, 12]);
  expect(merged.byWorker).toEqual([expect.objectContaining({ pid: 11 }), expect.objectContaining({ pid: 12 })]);
  expect(merged.kdc).toEqual({ endpoints: ['10.0.3.2:7391'], inFlight: 0 });
  const text = formatStatus({ ...merged, principal: 'g', kvno: 1, mode: 'router', services: [] } as never);
  expect(text).toContain('workers: pid 11 (0 flows, 1 keys, 0 packets), pid 12 (0 flows, 1 keys, 0 packets)');
  expect(merged.queue).toMatchObject({ packets: 12, verdicts: 12, batches: 2 });
  expect(merged.kernelQueue).toEqual({ waiting: 2, queueFull: 12, socketFull: 0 });
  expect(merged.keying).toMatchObject({ count: 2, sumMs: 12 });
});

function keyingOf(ms: number[]) {
  const h = new LatencyHistogram([1, 5, 10]);
  for (const m of ms) h.observe(m);
  return h.snapshot();
}

test('/metrics: the gateway keying histogram in seconds, cumulative buckets; status gives count, mean and bounds', async () => {
  const status = { ...figures(null), keying: keyingOf([0.5, 3, 4, 7, 30]) };
  const text = await registryFromStatus('gateway', () => status).metrics();
  expect(text).toContain('# TYPE ciphergate_gateway_keying_duration_seconds histogram');
  expect(text).toContain('ciphergate_gateway_keying_duration_seconds_bucket{le="0.001"} 1');
  expect(text).toContain('ciphergate_gateway_keying_duration_seconds_bucket{le="0.005"} 3');
  expect(text).toContain('ciphergate_gateway_keying_duration_seconds_bucket{le="0.01"} 4');
  expect(text).toContain('ciphergate_gateway_keying_duration_seconds_bucket{le="+Inf"} 5');
  expect(text).toContain('ciphergate_gateway_keying_duration_seconds_sum 0.0445');
  expect(text).toContain('ciphergate_gateway_keying_duration_seconds_count 5');
  expect(await registryFromStatus('agent', () => status).metrics()).not.toContain('keying_duration');
  const doc = { role: 'gateway', principal: 'g', kvno: 1, mode: 'router', pid: 1, uptimeS: 1, steering: 'nft', flows: [], services: [], ...status, kdc: { endpoints: [], inFlight: 0 } };
  expect(formatStatus(doc)).toContain('keying (SYN held until cipher sync): 5 done, mean 8.9 ms, p50 <= 5 ms, p99 > 10 ms');
  expect(formatStatus({ ...doc, keying: keyingOf([]) })).not.toContain('keying (');
});
