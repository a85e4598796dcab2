// The KDC's HTTP port for operators and orchestrators, separate from the KDC protocol port:
//   GET /metrics  Prometheus text from the KDC's own registry
//   GET /healthz  200 while the process runs (liveness)
//   GET /readyz   200 when the store answers and the master key is loaded, else 503 with the
//                 reasons as JSON (readiness: take this instance out of rotation, do not restart it)
// The same server the datapath daemons use (runtime/ops-http.ts).
import { OpsHttpServer } from '../runtime/ops-http';
import type { KdcMetrics } from './metrics';

export interface Readiness {
  ready: boolean;
  /** What is wrong when not ready; empty when ready. */
  problems: string[];
}

export interface KdcHttpOptions {
  host: string;
  port: number;
  metrics: KdcMetrics;
  readiness(): Readiness;
}

export class KdcHttpServer extends OpsHttpServer {
  constructor(o: KdcHttpOptions) {
    super({ host: o.host, port: o.port, registry: () => o.metrics.registry, readiness: () => o.readiness() });
  }
}
