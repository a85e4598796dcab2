// The load generator of `bench kdc`: one pipelined TCP connection that sends pre-sealed
// ISSUE_REQUESTs and stamps their answers, built to cost as little as possible so that the
// figures are the KDC's, not this process's.
//
// Why not KdcClient: a promise, a closure and a timer per request make this process collect
// garbage, and a scavenge here delays the stamping of every answer that arrives meanwhile, which
// showed up as tail latency the KDC never had. Here the requests lie end to end in one buffer,
// request i carries i in the first 4 bytes of its requestId (the answer echoes the requestId at
// a fixed offset), and the per-request state is two numbers in typed arrays. Sending k more
// requests is one write of a slice of that buffer.
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { FRAME_HEADER_LEN, MAX_FRAME_LENGTH } from '../common/protocol/framing';
import { decodeKdcMessage, KDC_ERROR_NAMES, KdcType } from '../common/protocol/kdc-messages';

/** Offset of the requestId in every KDC frame (after the header, version and type). */
const REQUEST_ID_AT = FRAME_HEADER_LEN + 2;

/** Requests laid end to end: request i is bytes[offsets[i], offsets[i + 1]). */
export interface RequestBatch {
  bytes: Buffer;
  offsets: Float64Array;
  count: number;
}

/** Lays out `count` requests; `seal(i, requestId)` returns request i's frame with that requestId. */
export function buildBatch(count: number, seal: (requestId: Uint8Array) => Uint8Array, randomTail: (i: number) => Uint8Array): RequestBatch {
  const frames: Uint8Array[] = new Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const id = new Uint8Array(16);
    new DataView(id.buffer).setUint32(0, i);
    id.set(randomTail(i).subarray(0, 12), 4);
    const f = seal(id);
    if (f.length < REQUEST_ID_AT + 16 || Buffer.compare(f.subarray(REQUEST_ID_AT, REQUEST_ID_AT + 16), id) !== 0) throw new Error('a sealed request does not carry its requestId at offset 6');
    frames[i] = f;
    total += f.length;
  }
  const bytes = Buffer.allocUnsafe(total);
  const offsets = new Float64Array(count + 1);
  let at = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = at;
    bytes.set(frames[i] as Uint8Array, at);
    at += (frames[i] as Uint8Array).length;
  }
  offsets[count] = at;
  return { bytes, offsets, count };
}

export interface LoadRun {
  /** Answers received, and of those the ones that were not ISSUE_RESPONSE, by error name. */
  answers: number;
  refusals: Record<string, number>;
  /** Latency of each answer, ms, in arrival order (first `answers` entries). */
  lat: Float64Array;
  seconds: number;
  maxInFlight: number;
}

/** One connection to the KDC; `closedLoop`/`openLoop` run one case each on it. */
export class KdcLoad {
  private carry: Buffer | null = null;
  private onFrame: ((index: number, type: number, frame: Buffer) => void) | null = null;
  /** After each chunk's answers: where a closed loop sends what they released. */
  private onChunk: (() => void) | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.data(chunk));
    socket.on('error', (e) => (this.failure = e));
    socket.on('close', () => (this.failure ??= new Error('the KDC closed the connection')));
  }

  static connect(host: string, port: number): Promise<KdcLoad> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port }, () => {
        s.off('error', reject);
        resolve(new KdcLoad(s));
      });
      s.once('error', reject);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /** Splits answers out of the stream (a frame may span chunks) and hands each to onFrame. */
  private data(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    let at = 0;
    while (buf.length - at >= FRAME_HEADER_LEN) {
      const len = buf.readUInt32BE(at);
      if (len < 2 + 16 || len > MAX_FRAME_LENGTH) {
        this.failure = new Error(`the KDC sent a frame of length ${len}`);
        this.socket.destroy();
        return;
      }
      const end = at + FRAME_HEADER_LEN + len;
      if (end > buf.length) break;
      this.onFrame?.(buf.readUInt32BE(at + REQUEST_ID_AT), buf[at + 5] as number, buf.subarray(at, end));
      at = end;
    }
    if (at < buf.length) this.carry = Buffer.from(buf.subarray(at));
    this.onChunk?.();
  }

  private send(batch: RequestBatch, from: number, to: number): void {
    if (to > from) this.socket.write(batch.bytes.subarray(batch.offsets[from], batch.offsets[to]));
  }

  /**
   * Keeps `concurrency` requests in flight for `seconds`: each answer releases the next request,
   * and the requests released by one chunk of answers leave in one write. After `seconds` it
   * sends no more and waits for the answers in flight.
   */
  closedLoop(batch: RequestBatch, concurrency: number, seconds: number): Promise<LoadRun> {
    const sentAt = new Float64Array(batch.count);
    const lat = new Float64Array(batch.count);
    const refusals: Record<string, number> = {};
    let sent = 0;
    let answers = 0;
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    return new Promise((resolve, reject) => {
      const finish = (failure: Error | null) => {
        this.onFrame = null;
        this.onChunk = null;
        clearInterval(watchdog);
        if (failure) reject(failure);
        else resolve({ answers, refusals, lat, seconds: (performance.now() - t0) / 1000, maxInFlight: concurrency });
      };
      // The connection may fail with requests in flight and no more chunks to come.
      const watchdog = setInterval(() => this.failure && finish(this.failure), 100);
      this.onFrame = (i, type, frame) => {
        lat[answers++] = performance.now() - (sentAt[i] as number);
        if (type !== KdcType.IssueResponse) count(refusals, frame);
      };
      this.onChunk = () => {
        if (performance.now() < end) {
          const to = sent + (concurrency - (sent - answers));
          if (to > batch.count) return finish(new Error(`ran out of pre-sealed requests (${batch.count}) before ${seconds} s`));
          this.stamp(sentAt, sent, to);
          this.send(batch, sent, to);
          sent = to;
        } else if (answers === sent) finish(null);
      };
      sent = Math.min(concurrency, batch.count);
      this.stamp(sentAt, 0, sent);
      this.send(batch, 0, sent);
    });
  }

  /**
   * Sends at `rate`/s for `seconds`, never waiting for answers: every millisecond (a timer) what
   * is due leaves in one write, as from many gateways at once. Latency runs from that write, so
   * a KDC stall counts in full: the requests due meanwhile are sent and wait.
   */
  openLoop(batch: RequestBatch, rate: number, seconds: number): Promise<LoadRun> {
    const total = Math.min(batch.count, Math.floor(rate * seconds));
    const sentAt = new Float64Array(total);
    const lat = new Float64Array(total);
    const refusals: Record<string, number> = {};
    let sent = 0;
    let answers = 0;
    let maxInFlight = 0;
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      this.onFrame = (i, type, frame) => {
        lat[answers++] = performance.now() - (sentAt[i] as number);
        if (type !== KdcType.IssueResponse) count(refusals, frame);
        if (answers === total) {
          this.onFrame = null;
          resolve({ answers, refusals, lat, seconds: (performance.now() - t0) / 1000, maxInFlight });
        }
      };
      const tick = () => {
        if (this.failure) return reject(this.failure);
        const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
        if (due > sent) {
          this.stamp(sentAt, sent, due);
          this.send(batch, sent, due);
          sent = due;
          maxInFlight = Math.max(maxInFlight, sent - answers);
        }
        if (sent < total || answers < total) setTimeout(tick, 1);
      };
      tick();
    });
  }

  private stamp(sentAt: Float64Array, from: number, to: number): void {
    sentAt.fill(performance.now(), from, to);
  }
}

function count(refusals: Record<string, number>, frame: Buffer): void {
  const d = decodeKdcMessage(frame);
  const name = d.ok && d.value.message.type === KdcType.IssueError ? (KDC_ERROR_NAMES[d.value.message.code] ?? 'unknown') : 'undecodable';
  refusals[name] = (refusals[name] ?? 0) + 1;
}
