// The lab's web server, an unmodified-program stand-in that knows nothing of ciphergate:
//   GET  /                  a short greeting
//   GET  /bytes/N?seed=S    N deterministic pseudo-random bytes (labBytes), to check downloads
//   POST /sha256            answers "<sha256 hex> <length>" of the request body, to check uploads
// Run: node dist/lab/http-server.js PORT
import { createCipheriv, createHash } from 'node:crypto';
import * as http from 'node:http';

const CHUNK = 64 * 1024;

/** The deterministic byte stream of /bytes: AES-128-CTR keystream under a key from the seed. */
export function labByteStream(seed: string): (n: number) => Buffer {
  const key = createHash('sha256').update(`ciphergate-lab/${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

/** sha256 hex of the first n bytes of the stream for `seed` (what a client should receive). */
export function labBytesSha256(seed: string, n: number): string {
  const next = labByteStream(seed);
  const h = createHash('sha256');
  for (let left = n; left > 0; left -= CHUNK) h.update(next(Math.min(CHUNK, left)));
  return h.digest('hex');
}

export function startLabHttpServer(port: number, host = '::'): http.Server {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://lab');
    const bytes = /^\/bytes\/(\d{1,12})$/.exec(url.pathname);
    if (req.method === 'GET' && url.pathname === '/') {
      res.end('hello from the lab server\n');
    } else if (req.method === 'GET' && bytes) {
      const total = Number(bytes[1]);
      const next = labByteStream(url.searchParams.get('seed') ?? '0');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
      let left = total;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(CHUNK, left);
          left -= n;
          if (!res.write(next(n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (req.method === 'POST' && url.pathname === '/sha256') {
      const h = createHash('sha256');
      let length = 0;
      req.on('data', (c: Buffer) => {
        h.update(c);
        length += c.length;
      });
      req.on('end', () => res.end(`${h.digest('hex')} ${length}\n`));
    } else {
      res.writeHead(404).end('not found\n');
    }
  });
  server.keepAliveTimeout = 1000;
  server.listen(port, host);
  return server;
}

if (require.main === module) {
  const port = Number(process.argv[2] ?? 80);
  startLabHttpServer(port).on('listening', () => process.stdout.write(`lab http server on port ${port}\n`));
}
