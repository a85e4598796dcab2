// The load generator of `bench e2e`, run by node inside the client namespace (so it imports
// nothing but node builtins, and starts fast). Every connection is fresh: connect, send one small
// HTTP request, time the first byte of the answer, read the answer to its end (the server closes,
// `Connection: close`, and node then closes our side). Prints one JSON object on stdout.
//
//   node e2e-load.js latency HOST PORT SECONDS MAX_CONNECTIONS
//     sequential connections (one at a time) for SECONDS or MAX_CONNECTIONS, after WARMUP
//     untimed ones; connect-plus-first-byte latency of each.
//   node e2e-load.js rate HOST PORT SECONDS CONCURRENCY
//     CONCURRENCY loops opening connections back to back for SECONDS; completed connections per
//     second, and the connect-plus-first-byte latency under that load.
import * as net from 'node:net';

export interface LatencySummary {
  /** Connections measured (warm-up excluded). */
  connections: number;
  /** Connections that failed (refused, reset, timed out, no answer). */
  errors: number;
  /** First error message seen, for the report. */
  firstError: string | null;
  /** From before connect() to the first byte of the answer, ms. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** From before connect() to the connect event (TCP handshake as the application sees it), ms. */
  connectP50Ms: number;
}

export interface RateSummary extends LatencySummary {
  concurrency: number;
  seconds: number;
  /** Completed connections (full answer received) per wall second. */
  perSecond: number;
}

const REQUEST = 'GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n';
const WARMUP = 5;
/** One connection gets this long; a SYN retransmitted after 1 s still fits, a hang does not. */
const CONNECTION_TIMEOUT_MS = 5000;

interface Sample {
  firstByteMs: number;
  connectMs: number;
}

const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

/** One fresh connection with one request; resolves when the answer has been read to its end. */
export function oneConnection(host: string, port: number): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let connectMs = NaN;
    let firstByteMs = NaN;
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(new Error(`no complete answer within ${CONNECTION_TIMEOUT_MS} ms`)), CONNECTION_TIMEOUT_MS);
    socket.once('connect', () => {
      connectMs = msSince(t0);
      socket.write(REQUEST);
    });
    socket.on('data', () => {
      if (Number.isNaN(firstByteMs)) firstByteMs = msSince(t0);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (Number.isNaN(firstByteMs)) reject(new Error('closed without an answer'));
      else resolve({ firstByteMs, connectMs });
    });
  });
}

export function summarize(samples: readonly Sample[], errors: number, firstError: string | null): LatencySummary {
  const sorted = samples.map((s) => s.firstByteMs).sort((a, b) => a - b);
  const connects = samples.map((s) => s.connectMs).sort((a, b) => a - b);
  const q = (a: number[], p: number): number => {
    const v = a[Math.min(a.length - 1, Math.floor(p * a.length))];
    return v === undefined ? NaN : Math.round(v * 1000) / 1000;
  };
  return {
    connections: samples.length,
    errors,
    firstError,
    p50Ms: q(sorted, 0.5),
    p90Ms: q(sorted, 0.9),
    p99Ms: q(sorted, 0.99),
    maxMs: q(sorted, 1),
    connectP50Ms: q(connects, 0.5),
  };
}

async function latency(host: string, port: number, seconds: number, maxConnections: number): Promise<LatencySummary> {
  for (let i = 0; i < WARMUP; i++) await oneConnection(host, port).catch(() => undefined);
  const samples: Sample[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const deadline = performance.now() + seconds * 1000;
  while (samples.length + errors < maxConnections && performance.now() < deadline) {
    try {
      samples.push(await oneConnection(host, port));
    } catch (e) {
      errors++;
      firstError ??= (e as Error).message;
    }
  }
  return summarize(samples, errors, firstError);
}

async function rate(host: string, port: number, seconds: number, concurrency: number): Promise<RateSummary> {
  const samples: Sample[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      try {
        samples.push(await oneConnection(host, port));
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  // Connections still open at the deadline finish first: the rate divides by the real span.
  const elapsed = (performance.now() - start) / 1000;
  return { ...summarize(samples, errors, firstError), concurrency, seconds: Math.round(elapsed * 1000) / 1000, perSecond: samples.length / elapsed };
}

async function main(argv: string[]): Promise<void> {
  const [what, host, portText, secondsText, nText] = argv;
  const [port, seconds, n] = [Number(portText), Number(secondsText), Number(nText)];
  if ((what !== 'latency' && what !== 'rate') || !host || !(port > 0) || !(seconds > 0) || !(n >= 1)) {
    throw new Error('usage: e2e-load.js latency|rate HOST PORT SECONDS N');
  }
  const result = what === 'latency' ? await latency(host, port, seconds, n) : await rate(host, port, seconds, n);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`e2e-load: ${(e as Error).message}\n`);
    process.exit(2);
  });
}
