// The simulation's world: a seeded RNG, a virtual clock with an event queue, and the links that
// carry packets. Nothing here reads real time; every run is a pure function of its seed.
import { seededRandom } from '../../common/crypto/random';

/** Numbers drawn from seededRandom, buffered (one ChaCha20 call per 4 KB, not per draw). */
export class Rng {
  private readonly source: (n: number) => Uint8Array;
  private buffer: Uint8Array = new Uint8Array(0);
  private at = 0;

  constructor(seed: string) {
    this.source = seededRandom(seed);
  }

  /** Fresh bytes (a copy). */
  bytes(n: number): Uint8Array {
    return this.source(n);
  }

  /** Uniform in [0, 2^32). */
  u32(): number {
    if (this.at + 4 > this.buffer.length) {
      this.buffer = this.source(4096);
      this.at = 0;
    }
    const b = this.buffer;
    const v = ((b[this.at]! << 24) | (b[this.at + 1]! << 16) | (b[this.at + 2]! << 8) | b[this.at + 3]!) >>> 0;
    this.at += 4;
    return v;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)] as T;
  }
}

interface Scheduled<E> {
  at: number;
  order: number;
  event: E;
}

/**
 * A virtual clock and a min-heap of events. Ties at the same time run in scheduling order, so
 * the run never depends on heap internals.
 */
export class EventQueue<E> {
  private heap: Scheduled<E>[] = [];
  private counter = 0;
  now = 0;

  constructor(start: number) {
    this.now = start;
  }

  get size(): number {
    return this.heap.length;
  }

  at(time: number, event: E): void {
    if (time < this.now) throw new Error(`event scheduled in the past (${time} < ${this.now})`);
    this.heap.push({ at: time, order: this.counter++, event });
    this.up(this.heap.length - 1);
  }

  after(delay: number, event: E): void {
    this.at(this.now + delay, event);
  }

  /** Time of the earliest event, or Infinity. */
  peekTime(): number {
    return this.heap[0]?.at ?? Infinity;
  }

  /** Removes the earliest event and moves the clock to it. */
  pop(): E {
    const top = this.heap[0];
    if (top === undefined) throw new Error('pop on an empty event queue');
    const last = this.heap.pop() as Scheduled<E>;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.down(0);
    }
    this.now = top.at;
    return top.event;
  }

  private less(a: Scheduled<E>, b: Scheduled<E>): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) return;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

export interface Impairment {
  /** Probability a packet is lost. */
  loss: number;
  /** Probability a packet is delivered twice (each copy with its own delay). */
  duplicate: number;
  /** Probability a packet is held back by an extra random delay (so later ones overtake it). */
  reorder: number;
  /** Upper bound of that extra delay (ms). */
  reorderDelayMs: number;
  /** One-way delay (ms). */
  delayMs: number;
  /** Probability an ECN-capable (ECT) IP packet is marked CE, as a congested router would. */
  ceMark?: number;
}

export const CLEAN: Impairment = { loss: 0, duplicate: 0, reorder: 0, reorderDelayMs: 0, delayMs: 1 };

export interface LinkStats {
  sent: number;
  lost: number;
  duplicated: number;
  reordered: number;
  ceMarked: number;
}

/**
 * A one-way link: what goes in is scheduled for delivery (or not) by the impairment. With
 * CLEAN it is a FIFO with a fixed delay.
 */
export class Link<E> {
  readonly stats: LinkStats = { sent: 0, lost: 0, duplicated: 0, reordered: 0, ceMarked: 0 };

  constructor(
    private readonly queue: EventQueue<E>,
    private readonly rng: Rng,
    private readonly impairment: Impairment,
    private readonly arrive: (packet: Uint8Array) => E,
  ) {}

  send(sent: Uint8Array): void {
    const packet = sent.slice();
    this.stats.sent++;
    const im = this.impairment;
    if (this.rng.chance(im.loss)) {
      this.stats.lost++;
      return;
    }
    if (this.rng.chance(im.ceMark ?? 0) && markCe(packet)) this.stats.ceMarked++;
    const copies = this.rng.chance(im.duplicate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      let delay = im.delayMs;
      if (this.rng.chance(im.reorder)) {
        this.stats.reordered++;
        delay += this.rng.int(1, im.reorderDelayMs);
      }
      // Each copy is its own buffer: receivers may not share state through it.
      this.queue.after(delay, this.arrive(packet.slice()));
    }
  }
}

/**
 * Sets the IP ECN field of an ECT(0)/ECT(1) packet to CE (in place; the IPv4 header checksum is
 * fixed, IPv6 has none). Returns false for a packet that is not ECN-capable.
 */
export function markCe(packet: Uint8Array): boolean {
  const version = (packet[0] ?? 0) >> 4;
  if (version === 4) {
    const tos = packet[1] as number;
    if ((tos & 3) === 0 || (tos & 3) === 3) return false;
    packet[1] = tos | 3;
    const ihl = ((packet[0] as number) & 0x0f) * 4;
    packet[10] = 0;
    packet[11] = 0;
    let sum = 0;
    for (let i = 0; i < ihl; i += 2) sum += ((packet[i] as number) << 8) | (packet[i + 1] as number);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const check = ~sum & 0xffff;
    packet[10] = check >> 8;
    packet[11] = check & 0xff;
    return true;
  }
  if (version === 6) {
    // Traffic class: low 4 bits of byte 0 and high 4 bits of byte 1; ECN is its low 2 bits.
    const ecn = ((packet[1] as number) >> 4) & 3;
    if (ecn === 0 || ecn === 3) return false;
    packet[1] = (packet[1] as number) | 0x30;
    return true;
  }
  return false;
}
