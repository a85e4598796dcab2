// Prometheus metrics of a datapath daemon, read from the engine when scraped: the engine's
// named counters (a fixed set per role, so cardinality is bounded), flows by state, keys held,
// keyings in progress and the datapath's verdict counts. No addresses or principals as labels.
import { Counter, Gauge, Registry } from 'prom-client';
import type { HistogramSnapshot } from '../common/engine/latency-histogram';

export interface MetricsSource {
  role: 'gateway' | 'agent';
  counters(): Record<string, number>;
  flowStates(): Record<string, number>;
  keyedFlows(): number;
  keyingsInProgress(): number;
  datapath(): Record<string, number>;
  /** The queue binding's counters (NfqueueDatapath.queueStats), or null. */
  queue?(): Record<string, number> | null;
  /** The kernel's figures for the queues (NfqueueDatapath.kernelQueue), or null. */
  kernelQueue?(): Record<string, number> | null;
  kdConnections(): number;
  kdcInFlight(): number;
  /** The gateway's keying times (GatewayEngine.keyingTimes), or null. */
  keying?(): HistogramSnapshot | null;
}

/** A Counter fed from a monotonically growing snapshot: each scrape adds what grew since the last. */
function snapshotCounter(registry: Registry, name: string, help: string, label: string, read: () => Record<string, number>): void {
  const seen = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect(this: Counter<string>) {
      for (const [k, v] of Object.entries(read())) {
        const grew = v - (seen.get(k) ?? 0);
        // A name seen for the first time shows even at zero: a series that exists can be alerted on.
        if (grew > 0 || !seen.has(k)) this.inc({ [label]: k }, Math.max(grew, 0));
        seen.set(k, v);
      }
    },
  });
}

/**
 * A Prometheus histogram read from a HistogramSnapshot at each scrape (prom-client's Histogram
 * only takes observations one by one; the engine keeps its own buckets, summed over workers).
 */
function snapshotHistogram(registry: Registry, name: string, help: string, read: () => HistogramSnapshot | null): void {
  registry.registerMetric({
    name,
    help,
    type: 'histogram',
    get() {
      const h = read();
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      if (h !== null) {
        let cumulative = 0;
        h.boundsMs.forEach((b, i) => {
          cumulative += h.counts[i] as number;
          values.push({ metricName: `${name}_bucket`, labels: { le: b / 1000 }, value: cumulative });
        });
        values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: h.count });
        values.push({ metricName: `${name}_sum`, labels: {}, value: h.sumMs / 1000 });
        values.push({ metricName: `${name}_count`, labels: {}, value: h.count });
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
  } as unknown as Parameters<Registry['registerMetric']>[0]);
}

export function engineRegistry(src: MetricsSource): Registry {
  const registry = new Registry();
  const p = `ciphergate_${src.role}`;
  snapshotCounter(registry, `${p}_events_total`, `${src.role} engine events by name (see docs/OPERATIONS.md, counters)`, 'event', () => src.counters());
  snapshotCounter(registry, `${p}_datapath_packets_total`, 'packets handled by the datapath adapter, by verdict', 'verdict', () => src.datapath());
  const queue = () => src.queue?.() ?? null;
  snapshotCounter(registry, `${p}_nfqueue_events_total`, 'the NFQUEUE binding: packets read, batches, wake-ups, verdicts, verdict sends, errors', 'event', () => {
    const { pending: _, ...counts } = queue() ?? {};
    return counts;
  });
  const kernel = () => src.kernelQueue?.() ?? null;
  snapshotCounter(registry, `${p}_nfqueue_kernel_drops_total`, 'packets the kernel dropped before the daemon saw them: the queue was full, or the daemon\'s socket buffer was', 'reason', (): Record<string, number> => {
    const k = kernel();
    return k === null ? {} : { 'queue-full': k.queueFull ?? 0, 'socket-full': k.socketFull ?? 0 };
  });
  new Gauge({
    name: `${p}_flows`,
    help: 'flows in the flow table, by state',
    labelNames: ['state'],
    registers: [registry],
    collect(this: Gauge<string>) {
      this.reset();
      for (const [state, n] of Object.entries(src.flowStates())) this.set({ state }, n);
    },
  });
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name: `${p}_${name}`,
      help,
      registers: [registry],
      collect(this: Gauge) {
        this.set(read());
      },
    });
  };
  gauge('nfqueue_kernel_waiting_packets', 'packets the kernel holds in the queues, waiting for a verdict (held SYNs included)', () => kernel()?.waiting ?? 0);
  gauge('nfqueue_pending_verdict_bytes', 'verdict bytes batched and not yet sent to the kernel', () => queue()?.pending ?? 0);
  gauge('keyed_flows', 'flows holding session keys (zero when no flow is open)', () => src.keyedFlows());
  gauge('keyings_in_progress', 'flows between SYN and cipher sync', () => src.keyingsInProgress());
  gauge('key_delivery_connections', 'open key-delivery TCP connections', () => src.kdConnections());
  if (src.keying) snapshotHistogram(registry, `${p}_keying_duration_seconds`, 'SYN seen to SYN released after cipher sync: the delay keying adds to a new connection (millisecond clock)', () => src.keying?.() ?? null);
  if (src.role === 'gateway') gauge('kdc_requests_in_flight', 'KDC requests sent and not yet answered', () => src.kdcInFlight());
  return registry;
}

/** The status document fields the metrics read (both daemons' status() and the merged one). */
export interface StatusFigures {
  counters: Record<string, number>;
  flowStates: Record<string, number>;
  keyedFlows: number;
  keyingsInProgress: number;
  datapath: Record<string, number>;
  queue?: Record<string, number> | null;
  kernelQueue?: Record<string, number> | null;
  keyDelivery: { connections: number };
  kdc?: { inFlight: number };
  keying?: HistogramSnapshot | null;
}

/** Metrics read from a daemon's status document at each scrape. */
export function registryFromStatus(role: 'gateway' | 'agent', status: () => StatusFigures): Registry {
  return engineRegistry({
    role,
    counters: () => status().counters,
    flowStates: () => status().flowStates,
    keyedFlows: () => status().keyedFlows,
    keyingsInProgress: () => status().keyingsInProgress,
    datapath: () => status().datapath,
    queue: () => status().queue ?? null,
    kernelQueue: () => status().kernelQueue ?? null,
    kdConnections: () => status().keyDelivery.connections,
    kdcInFlight: () => status().kdc?.inFlight ?? 0,
    ...(role === 'gateway' ? { keying: () => status().keying ?? null } : {}),
  });
}
