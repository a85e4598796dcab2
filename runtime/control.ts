// The control socket of a datapath daemon: a unix socket (mode 0600) that answers every
// connection with one JSON status document and closes. `ciphergate status` reads it. The status
// holds flows, states and counters, never key material.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export class ControlServer {
  private readonly server: net.Server;

  constructor(
    readonly socketPath: string,
    status: () => unknown,
  ) {
    this.server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      void Promise.resolve()
        .then(status)
        .then(
          (doc) => JSON.stringify(doc, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
          (e: unknown) => JSON.stringify({ error: e instanceof Error ? e.message : String(e) }),
        )
        .then((body) => socket.end(body + '\n'));
    });
  }

  async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    // A socket left by a crashed daemon would make listen fail with EADDRINUSE.
    if (fs.existsSync(this.socketPath)) {
      if (await isLiveSocket(this.socketPath)) throw new Error(`control socket ${this.socketPath} is in use: is another daemon running?`);
      fs.unlinkSync(this.socketPath);
    }
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      const mask = process.umask(0o177);
      this.server.listen(this.socketPath, () => {
        process.umask(mask);
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A stale socket file refuses connections at once; a live one accepts. */
function isLiveSocket(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Reads one status document from a control socket. */
export function readControl(socketPath: string, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(socketPath);
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`)));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? `no daemon is listening on ${socketPath} (is it running?)` : `${socketPath}: ${e.message}`)),
    );
    socket.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (e) {
        reject(new Error(`${socketPath}: not a status document (${(e as Error).message})`));
      }
    });
  });
}
