// The NFQUEUE datapath of the gateway (host and router modes) and of the agent (host mode):
// packets arrive from NFQUEUE, their verdict goes back with the rewritten bytes. A SYN the engine
// holds keeps its queue entry; when the engine releases it, the verdict accepts the released
// bytes with MARK_KEYED, which the steering rules copy into the flow's conntrack mark. Packets
// the engine originates go out through a raw socket marked so they are not queued again.
import type { Toward, Verdict } from '../common/engine/actions';
import { canonicalFlowKey } from '../common/wire/flow-key';
import { parseIp } from '../common/wire/ip';
import type { Datapath, EngineDriver } from './engine-driver';
import { DEFAULT_MAX_QUEUE_LEN, type KernelQueueFigures, readKernelQueues } from './kernel-queue';
import { NfQueue, type QueuedPacket } from './nfqueue';
import { RawSender } from './raw-sender';
import { MARK_KEYED, MARK_ORIGINATED } from './steering';

interface Held {
  id: number;
  since: number;
  queue: NfQueue;
}

/** The flow key of a TCP/IP packet (both directions give the same key), or null. */
export function packetFlowKey(packet: Uint8Array): string | null {
  const ip = parseIp(packet, 0);
  if (!ip.ok || ip.value.protocol !== 6 || ip.value.isFragment) return null;
  const o = ip.value.payloadOffset;
  if (o + 4 > packet.length) return null;
  return canonicalFlowKey(ip.value, (packet[o]! << 8) | packet[o + 1]!, (packet[o + 2]! << 8) | packet[o + 3]!);
}

/** The binding counters reported (lastError is a code, not a count). */
const QUEUE_COUNTERS = ['packets', 'batches', 'wakes', 'verdicts', 'sends', 'errors', 'pending'] as const;

export class NfqueueDatapath implements Datapath {
  private readonly queues: NfQueue[] = [];
  private readonly held = new Map<string, Held>();
  private driver: EngineDriver | null = null;
  readonly raw: RawSender;
  readonly stats = { packets: 0, accepted: 0, rewritten: 0, dropped: 0, held: 0, released: 0, releasedRaw: 0, heldExpired: 0, originated: 0 };

  constructor(
    private readonly queueNumbers: readonly number[],
    private readonly heldTimeoutMs: number,
    onError: (reason: string) => void,
    private readonly maxQueueLen = DEFAULT_MAX_QUEUE_LEN,
  ) {
    this.raw = new RawSender(MARK_ORIGINATED, onError);
  }

  get queueStats(): Record<string, number> | null {
    let sum: Record<string, number> | null = null;
    for (const q of this.queues) {
      const s = q.stats();
      if (s === null) continue;
      sum ??= {};
      for (const k of QUEUE_COUNTERS) sum[k] = (sum[k] ?? 0) + s[k];
    }
    return sum;
  }

  /** The kernel's figures for our queues, summed (either binding); null when it has none to give. */
  get kernelQueue(): KernelQueueFigures | null {
    const figures = this.queues.length === 0 ? null : readKernelQueues(this.queueNumbers);
    if (figures === null || figures.length === 0) return null;
    const sum: KernelQueueFigures = { waiting: 0, queueFull: 0, socketFull: 0 };
    for (const f of figures) {
      sum.waiting += f.waiting;
      sum.queueFull += f.queueFull;
      sum.socketFull += f.socketFull;
    }
    return sum;
  }

  /** Binds the queues and opens the raw sockets; throws with a fix-it message on failure. */
  start(driver: EngineDriver): void {
    this.driver = driver;
    this.raw.open();
    for (const n of this.queueNumbers) {
      const q: NfQueue = NfQueue.open(n, (p) => this.onPacket(q, p), { maxQueueLen: this.maxQueueLen });
      this.queues.push(q);
    }
  }

  private onPacket(queue: NfQueue, p: QueuedPacket): void {
    this.stats.packets++;
    (this.driver as EngineDriver).packet(p.payload, (v) => this.apply(queue, p, v));
  }

  private apply(queue: NfQueue, p: QueuedPacket, v: Verdict): void {
    switch (v.kind) {
      case 'pass':
        this.stats.accepted++;
        return queue.accept(p.id);
      case 'rewrite':
        this.stats.rewritten++;
        return queue.accept(p.id, v.packet);
      case 'drop':
        this.stats.dropped++;
        return queue.drop(p.id);
      case 'hold': {
        this.stats.held++;
        const key = packetFlowKey(p.payload);
        if (key === null) return queue.drop(p.id);
        // A resent SYN the engine holds again replaces the older entry, which is dropped.
        const prior = this.held.get(key);
        if (prior !== undefined) prior.queue.drop(prior.id);
        this.held.set(key, { id: p.id, since: Date.now(), queue });
        return;
      }
    }
  }

  release(packet: Uint8Array, _toward: Toward): void {
    const key = packetFlowKey(packet);
    const held = key === null ? undefined : this.held.get(key);
    if (held !== undefined && key !== null) {
      this.held.delete(key);
      this.stats.released++;
      held.queue.accept(held.id, packet, MARK_KEYED);
      return;
    }
    // The entry is gone (expired): send the SYN ourselves; the client will resend if that fails.
    this.stats.releasedRaw++;
    this.raw.send(packet);
  }

  originate(packet: Uint8Array, _toward: Toward): void {
    this.stats.originated++;
    this.raw.send(packet);
  }

  /** Drops held entries the engine gave up on (keying refused or timed out). */
  tick(now = Date.now()): void {
    for (const [key, h] of this.held) {
      if (now - h.since < this.heldTimeoutMs) continue;
      this.held.delete(key);
      this.stats.heldExpired++;
      h.queue.drop(h.id);
    }
  }

  get heldCount(): number {
    return this.held.size;
  }

  close(): void {
    for (const h of this.held.values()) h.queue.drop(h.id);
    this.held.clear();
    // Unbinding sends those drops first; the kernel then drops whatever is still queued.
    for (const q of this.queues.splice(0)) q.close();
    this.raw.close();
  }
}
