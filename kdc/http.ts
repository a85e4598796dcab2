// The KDC's HTTP port for operators and orchestrators, separate from the KDC protocol port:
//   GET /metrics  Prometheus text from the KDC's own registry
//   GET /healthz  200 while the process runs (liveness)
//   GET /readyz   200 when the store answers and the master key is loaded, else 503 with the
//                 reasons as JSON (readiness: take this instance out of rotation, do not restart it)
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
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

export class KdcHttpServer {
  private readonly server: http.Server;

  constructor(private readonly o: KdcHttpOptions) {
    this.server = http.createServer((req, res) => void this.route(req, res));
    this.server.keepAliveTimeout = 5000;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' });
    try {
      switch (path) {
        case '/metrics':
          return send(res, 200, this.o.metrics.registry.contentType, await this.o.metrics.text());
        case '/healthz':
          return send(res, 200, 'application/json', JSON.stringify({ status: 'alive' }) + '\n');
        case '/readyz': {
          const r = this.o.readiness();
          return send(res, r.ready ? 200 : 503, 'application/json', JSON.stringify({ status: r.ready ? 'ready' : 'unready', problems: r.problems }) + '\n');
        }
        default:
          return send(res, 404, 'text/plain', 'not found (try /metrics, /healthz, /readyz)\n');
      }
    } catch (e) {
      return send(res, 500, 'text/plain', `${e instanceof Error ? e.message : String(e)}\n`);
    }
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
