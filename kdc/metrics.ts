// The KDC's Prometheus metrics, in a registry of its own (tests and several KDC instances in one
// process never share counters). Labels are result codes and store operations only: never a
// principal name (DESIGN section 4), so cardinality is fixed and names do not leak to scrapers.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { KDC_ERROR_NAMES, type KdcErrorCode } from '../common/protocol/kdc-messages';

/** The `result` label of a request: 'ok' or a KDC error code name. */
export type RequestResult = 'ok' | (typeof KDC_ERROR_NAMES)[KdcErrorCode];

export class KdcMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'result'>;
  readonly latency: Histogram;
  readonly inFlight: Gauge;
  readonly connections: Gauge;
  readonly connectionsRefused: Counter<'reason'>;
  readonly storeErrors: Counter<'operation'>;
  readonly storeUp: Gauge;
  readonly principalLookups: Counter;
  readonly principalCacheMisses: Counter;
  readonly idempotentReplies: Counter;
  readonly auditQueued: Counter;
  readonly auditDropped: Counter;
  readonly auditWriteErrors: Counter;
  /** What the in-flight gauge reports (the service installs its counter). */
  inFlightNow: () => number = () => 0;
  private readonly byResult = new Map<string, Counter.Internal>();

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'ciphergate_kdc_requests_total',
      help: 'KDC requests answered, by result (ok or the ISSUE_ERROR code name)',
      labelNames: ['result'],
      registers,
    });
    // Every result starts at 0 so that rates and absent-series alerts work from the first scrape.
    for (const name of ['ok', ...Object.values(KDC_ERROR_NAMES)]) this.requests.inc({ result: name }, 0);
    this.latency = new Histogram({
      name: 'ciphergate_kdc_request_duration_seconds',
      help: 'Time from a complete request frame to its answer being written',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    const inFlightNow = (): number => this.inFlightNow();
    this.inFlight = new Gauge({
      name: 'ciphergate_kdc_in_flight',
      help: 'Requests being worked on',
      registers,
      // Read at scrape time, not set twice per request.
      collect() {
        this.set(inFlightNow());
      },
    });
    this.connections = new Gauge({ name: 'ciphergate_kdc_connections', help: 'Open gateway connections', registers });
    this.connectionsRefused = new Counter({
      name: 'ciphergate_kdc_connections_refused_total',
      help: 'Connections closed by the KDC, by reason (max-connections, idle, malformed, overflow, draining)',
      labelNames: ['reason'],
      registers,
    });
    this.storeErrors = new Counter({
      name: 'ciphergate_kdc_store_errors_total',
      help: 'Store operations that failed or timed out, by operation',
      labelNames: ['operation'],
      registers,
    });
    this.storeUp = new Gauge({ name: 'ciphergate_kdc_store_up', help: '1 while the store answers, 0 while it is down', registers });
    // Hits = lookups - misses. Counted at the two ends (the directory does not report hits).
    this.principalLookups = new Counter({
      name: 'ciphergate_kdc_principal_lookups_total',
      help: 'Principal lookups on the issue path (cache hits + misses)',
      registers,
    });
    this.principalCacheMisses = new Counter({
      name: 'ciphergate_kdc_principal_cache_misses_total',
      help: 'Principal lookups that had to read (and unseal) the record from the store',
      registers,
    });
    this.idempotentReplies = new Counter({
      name: 'ciphergate_kdc_idempotent_replies_total',
      help: 'Retries answered with the stored response of the same request id',
      registers,
    });
    this.auditQueued = new Counter({ name: 'ciphergate_kdc_audit_events_total', help: 'Audit events queued for the store', registers });
    this.auditDropped = new Counter({
      name: 'ciphergate_kdc_audit_dropped_total',
      help: 'Audit events dropped because the bounded audit queue was full or the store refused them',
      registers,
    });
    this.auditWriteErrors = new Counter({ name: 'ciphergate_kdc_audit_write_errors_total', help: 'Failed audit batch writes', registers });
  }

  /** Counts one answer; the labelled child is looked up once per result, not per request. */
  answered(result: RequestResult): void {
    let c = this.byResult.get(result);
    if (c === undefined) {
      c = this.requests.labels({ result });
      this.byResult.set(result, c);
    }
    c.inc();
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
