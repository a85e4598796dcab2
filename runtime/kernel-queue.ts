// The kernel's side of NFQUEUE as operators see it: how many packets a queue may hold before the
// kernel drops, and the kernel's own count of what it held and dropped
// (/proc/net/netfilter/nfnetlink_queue, per network namespace). Drops here happen before the
// daemon sees a packet, so its own counters cannot show them. No native code: config validation
// imports the limits.
import * as fs from 'node:fs';
import type { Walker } from '../common/config/walker';

/**
 * Packets the kernel holds for a queue, waiting for their verdict, before it drops new ones: the
 * kernel's default is 1024. A burst of new flows (every SYN held while it is keyed) or a pause of
 * the daemon (a GC) fills it. Twice the gateway's default limit of pending keyings (4096), so held
 * SYNs cannot crowd out keyed flows' packets; 8192 full-size packets pin about 20 MB at most.
 */
export const DEFAULT_MAX_QUEUE_LEN = 8192;
export const MAX_QUEUE_LEN = 1 << 20;

/** Most worker processes one daemon runs (one NFQUEUE number each). */
export const MAX_WORKERS = 64;

/** A config's `nfqueue` object: the first queue, one more per worker process, and the queue length. */
export function queueRange(w: Walker, value: unknown, defaultQueue: number): { queue: number; workers: number; maxQueueLen: number } {
  const q = w.ints('nfqueue', value, { queue: [0, 65535, defaultQueue], workers: [1, MAX_WORKERS, 1], maxQueueLen: [1, MAX_QUEUE_LEN, DEFAULT_MAX_QUEUE_LEN] });
  if (q.queue + q.workers - 1 > 65535) w.bad('nfqueue.workers', `queues ${q.queue}..${q.queue + q.workers - 1} go past 65535`);
  return q;
}

/** The kernel's own figures for a queue, from /proc/net/netfilter/nfnetlink_queue. */
export interface KernelQueueFigures {
  /** Packets queued now and waiting for a verdict (held SYNs included). */
  waiting: number;
  /** Packets dropped since the queue was bound because `waiting` had reached the queue length. */
  queueFull: number;
  /** Packets dropped because the daemon's socket buffer was full (it fell behind). */
  socketFull: number;
}

const KERNEL_QUEUE_TABLE = '/proc/net/netfilter/nfnetlink_queue';

/**
 * Parses the kernel's queue table (per line: queue, peer port id, queue total, copy mode, copy
 * range, queue dropped, user dropped, id sequence, 1). Lines that do not parse are skipped.
 */
export function parseKernelQueueTable(text: string): Map<number, KernelQueueFigures> {
  const out = new Map<number, KernelQueueFigures>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 7 || !f.slice(0, 7).every((x) => /^\d+$/.test(x))) continue;
    out.set(Number(f[0]), { waiting: Number(f[2]), queueFull: Number(f[5]), socketFull: Number(f[6]) });
  }
  return out;
}

/** The kernel's figures for each of `queues` it knows (in this network namespace), or null when the table cannot be read. */
export function readKernelQueues(queues: readonly number[], file = KERNEL_QUEUE_TABLE): KernelQueueFigures[] | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'latin1');
  } catch {
    return null;
  }
  const table = parseKernelQueueTable(text);
  return queues.flatMap((q) => table.get(q) ?? []);
}
