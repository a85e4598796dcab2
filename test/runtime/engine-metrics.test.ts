// What a scrape of a daemon's /metrics and `ciphergate status` show of the NFQUEUE binding's own
// counters (runtime/engine-metrics.ts, cli/commands/status.ts), from a status document.
import { registryFromStatus, type StatusFigures } from '../../runtime/engine-metrics';
import { formatStatus } from '../../cli/commands/status';

const figures = (queue: Record<string, number> | null): StatusFigures => ({
  counters: { 'keyed:ok': 2 },
  flowStates: { established: 1 },
  keyedFlows: 1,
  keyingsInProgress: 0,
  datapath: { accepted: 10 },
  queue,
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
