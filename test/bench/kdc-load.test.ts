// bench kdc's load generator (bench/kdc-load.ts) against a stand-in KDC on loopback that answers
// each request by its requestId, in chunks cut at random places: every answer is matched to its
// request once, refusals are named, and a closed loop keeps exactly its concurrency in flight.
import * as net from 'node:net';
import { buildBatch, KdcLoad } from '../../bench/kdc-load';
import { KdcErrorCode, KdcType, encodeKdcMessage } from '../../common/protocol/kdc-messages';

/** A request frame: header, then the requestId, then filler (the stand-in reads only the id). */
const fakeRequest = (requestId: Uint8Array): Uint8Array => {
  const f = new Uint8Array(4 + 2 + 16 + 40);
  new DataView(f.buffer).setUint32(0, f.length - 4);
  f[4] = 1;
  f[5] = KdcType.IssueRequest;
  f.set(requestId, 6);
  return f;
};

interface StandIn {
  port: number;
  maxInFlight: () => number;
  close: () => Promise<void>;
}

/** Answers request i with ISSUE_ERROR busy when i % 7 === 3, else a response-typed frame. */
async function standIn(): Promise<StandIn> {
  let maxInFlight = 0;
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const out: Uint8Array[] = [];
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const id = buf.subarray(6, 22);
        const i = id.readUInt32BE(0);
        out.push(
          i % 7 === 3
            ? encodeKdcMessage({ type: KdcType.IssueError, requestId: new Uint8Array(id), code: KdcErrorCode.Busy, reason: 'busy' })
            : Buffer.concat([Buffer.from([0, 0, 0, 2 + 16 + 30, 1, KdcType.IssueResponse]), id, Buffer.alloc(30)]),
        );
        buf = buf.subarray(4 + len);
      }
      maxInFlight = Math.max(maxInFlight, out.length);
      // Answer in pieces cut at arbitrary places, a little later.
      const all = Buffer.concat(out);
      let at = 0;
      while (at < all.length) {
        const n = 1 + Math.floor(Math.random() * 97);
        const piece = all.subarray(at, at + n);
        setTimeout(() => s.write(piece), 1);
        at += n;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, maxInFlight: () => maxInFlight, close: () => new Promise((r) => server.close(() => r())) };
}

test('buildBatch lays requests end to end, request i carrying i in its requestId', () => {
  const b = buildBatch(300, fakeRequest, (i) => new Uint8Array(12).fill(i & 0xff));
  expect(b.offsets[300]).toBe(b.bytes.length);
  for (const i of [0, 1, 150, 299]) {
    const f = b.bytes.subarray(b.offsets[i]!, b.offsets[i + 1]!);
    expect(f.readUInt32BE(6)).toBe(i);
    expect(f[10]).toBe(i & 0xff);
  }
  expect(() => buildBatch(1, () => new Uint8Array(10), () => new Uint8Array(12))).toThrow(/requestId at offset 6/);
});

test('closed loop: every answer is matched once, refusals named, never more than the concurrency in flight', async () => {
  const kdc = await standIn();
  const load = await KdcLoad.connect('127.0.0.1', kdc.port);
  try {
    const batch = buildBatch(50_000, fakeRequest, () => new Uint8Array(12));
    const run = await load.closedLoop(batch, 24, 0.3);
    expect(run.answers).toBeGreaterThan(100);
    expect(kdc.maxInFlight()).toBeLessThanOrEqual(24);
    // Requests 0..answers-1 went out (sent in order, all answered); 1 in 7 was refused busy.
    const busy = Array.from({ length: run.answers }, (_, i) => i).filter((i) => i % 7 === 3).length;
    expect(run.refusals).toEqual({ busy });
    const lat = run.lat.subarray(0, run.answers);
    expect(lat.every((x) => x >= 0 && x < 5000)).toBe(true);
  } finally {
    load.close();
    await kdc.close();
  }
});

test('open loop: sends at the rate without waiting, and stamps every answer', async () => {
  const kdc = await standIn();
  const load = await KdcLoad.connect('127.0.0.1', kdc.port);
  try {
    const batch = buildBatch(2000, fakeRequest, () => new Uint8Array(12));
    const t0 = Date.now();
    const run = await load.openLoop(batch, 2000, 0.5);
    expect(run.answers).toBe(1000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(run.refusals.busy).toBe(Array.from({ length: 1000 }, (_, i) => i).filter((i) => i % 7 === 3).length);
    expect(run.lat.every((x) => x >= 0)).toBe(true);
  } finally {
    load.close();
    await kdc.close();
  }
});

test('a KDC that closes the connection fails the run instead of hanging', async () => {
  const server = net.createServer((s) => s.once('data', () => s.destroy()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const load = await KdcLoad.connect('127.0.0.1', (server.address() as net.AddressInfo).port);
  try {
    await expect(load.closedLoop(buildBatch(100, fakeRequest, () => new Uint8Array(12)), 4, 5)).rejects.toThrow(/closed the connection|ECONNRESET/);
  } finally {
    load.close();
    await new Promise((r) => server.close(r));
  }
});
