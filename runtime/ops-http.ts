// The operators' HTTP port of a datapath daemon: GET /metrics (Prometheus text), /healthz
// (the process runs) and /readyz (the datapath is bound and the KDC reachable, else 503 with
// the reasons). Bound to loopback by default; it serves no secrets.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface OpsHttpOptions {
  host: string;
  port: number;
  registry: () => Registry;
  readiness: () => { ready: boolean; problems: string[] };
}

export class OpsHttpServer {
  private readonly server: http.Server;

  constructor(private readonly o: OpsHttpOptions) {
    this.server = http.createServer((req, res) => void this.route(req, res));
    this.server.keepAliveTimeout = 5000;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' });
    try {
      if (path === '/metrics') {
        const registry = this.o.registry();
        return send(200, registry.contentType, await registry.metrics());
      }
      if (path === '/healthz') return send(200, 'application/json', '{"status":"alive"}\n');
      if (path === '/readyz') {
        const r = this.o.readiness();
        return send(r.ready ? 200 : 503, 'application/json', JSON.stringify({ status: r.ready ? 'ready' : 'unready', problems: r.problems }) + '\n');
      }
      return send(404, 'text/plain', 'not found (try /metrics, /healthz, /readyz)\n');
    } catch (e) {
      return send(500, 'text/plain', `${e instanceof Error ? e.message : String(e)}\n`);
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
