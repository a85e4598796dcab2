// NFQUEUE. The kernel hands us whole IP packets (no link header) with an id; every packet must
// get exactly one verdict, now or later. A held packet keeps its id until the engine releases
// it, so a released SYN leaves through the kernel path it came in on (with its conntrack entry)
// instead of being re-injected.
//
// Two bindings, one behaviour. native/nfq (ours, built by `npm run build:native`): one call into
// JS per batch of packets read in one wake, verdicts sent together at the end of the batch.
// Without it (or with CIPHERGATE_NATIVE_NFQ=0) the `nfqueue` npm addon: one call and one
// sendmsg per packet, a good deal slower.
//
// Without a reader on the queue the kernel drops queued packets (neither binding sets `bypass`
// or fail-open): a stopped daemon fails closed.
import { loadNativeAddon } from '../common/native-addon';
import { DEFAULT_MAX_QUEUE_LEN } from './kernel-queue';

/** The verdict codes of linux/netfilter.h. */
const NF_DROP = 0;
const NF_ACCEPT = 1;

/** Packets handed to JS per call at most (the native binding's batch). */
const BATCH_MAX = 64;

export interface QueuedPacket {
  /** The kernel's packet id, for the verdict. */
  id: number;
  /** The IP packet, a copy of the kernel's (the native binding slices one buffer per batch). */
  payload: Buffer;
  /** The packet's fwmark (meta mark) as queued. */
  mark: number;
}

/** Counters of the native binding (null for the fallback). */
export interface NfqStats {
  packets: number;
  batches: number;
  wakes: number;
  verdicts: number;
  sends: number;
  /** Failed sends and error acks from the kernel (e.g. a verdict for an id it no longer holds). */
  errors: number;
  lastError: number;
  /** Bytes of verdicts not yet sent. */
  pending: number;
}

interface NativeQueue {
  /** Per packet of the current batch: id, mark, offset and length in the batch's buffer. */
  readonly meta: Uint32Array;
  verdict(id: number, verdict: number, mark: number | null, packet: Uint8Array | null): void;
  flush(): void;
  close(): void;
  stats(): NfqStats;
}

export interface NativeNfq {
  Queue: new (queue: number, rcvbufBytes: number, batchMax: number, maxQueueLen: number, onBatch: (count: number, data: Buffer) => void) => NativeQueue;
}

/** The native binding, or null when it is not built (or CIPHERGATE_NATIVE_NFQ=0). */
export const nativeNfq: NativeNfq | null = loadNativeAddon<NativeNfq>('nfq', 'cg_nfq', 'CIPHERGATE_NATIVE_NFQ');

/** What NfQueue needs of a binding. mark null: leave the packet's mark as it is. */
interface Binding {
  readonly name: 'native' | 'nfqueue';
  verdict(id: number, verdict: number, mark: number | null, packet: Uint8Array | null): void;
  close(): void;
  stats(): NfqStats | null;
}

class NativeBinding implements Binding {
  readonly name = 'native';
  private readonly q: NativeQueue;
  private inBatch = false;
  private flushQueued = false;
  private closed = false;

  constructor(
    queue: number,
    o: Required<NfQueueOptions>,
    private readonly onPacket: (p: QueuedPacket) => void,
    addon: NativeNfq,
  ) {
    this.q = new addon.Queue(queue, o.bufferBytes, BATCH_MAX, o.maxQueueLen, (count, data) => this.onBatch(count, data));
  }

  private onBatch(count: number, data: Buffer): void {
    const meta = this.q.meta;
    let failure: { error: unknown } | null = null;
    this.inBatch = true;
    try {
      for (let i = 0, j = 0; i < count && !this.closed; i++, j += 4) {
        const offset = meta[j + 2] as number;
        const packet: QueuedPacket = { id: meta[j] as number, payload: data.subarray(offset, offset + (meta[j + 3] as number)), mark: meta[j + 1] as number };
        try {
          this.onPacket(packet);
        } catch (error) {
          // The other packets of the batch still get their turn; the first error then surfaces.
          failure ??= { error };
        }
      }
    } finally {
      this.inBatch = false;
    }
    // The addon sends the batch's verdicts when this returns.
    if (failure !== null) throw failure.error;
  }

  verdict(id: number, verdict: number, mark: number | null, packet: Uint8Array | null): void {
    if (this.closed) return; // the kernel dropped the packet when the queue closed
    this.q.verdict(id, verdict, mark, packet);
    // Outside a batch (a held SYN released by a timer or a socket), send once this task is done,
    // together with whatever else it decides.
    if (!this.inBatch && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushNow);
    }
  }

  private readonly flushNow = (): void => {
    this.flushQueued = false;
    if (!this.closed) this.q.flush();
  };

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.q.close(); // sends what is pending first
  }

  stats(): NfqStats {
    return this.q.stats();
  }
}

interface NfqueueAddon {
  NFQueue: new () => {
    bindings: {
      open(queue: number, bufferBytes: number): void;
      read(cb: (info: { id: number; nfmark: number }, payload: Buffer) => void): void;
      setVerdict(id: number, verdict: number, markOrBuffer: number | Buffer | null, buffer?: Buffer | null): void;
    };
  };
}

/**
 * The `nfqueue` npm addon: it cannot unbind, so close() only stops handing packets on, and it
 * cannot set the queue length, so the kernel's default (1024) applies.
 */
class NpmBinding implements Binding {
  readonly name = 'nfqueue';
  private readonly handle: InstanceType<NfqueueAddon['NFQueue']>['bindings'];
  private closed = false;

  constructor(queue: number, { bufferBytes }: Required<NfQueueOptions>, onPacket: (p: QueuedPacket) => void) {
    let addon: NfqueueAddon;
    try {
      // Loaded here, not imported: a missing build must become an error that says how to fix it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require('nfqueue') as NfqueueAddon;
    } catch (e) {
      throw new Error(`neither native/nfq (npm run build:native) nor the nfqueue addon loads (${(e as Error).message}); install with npm and allowScripts so it is built, with libnetfilter-queue-dev present`);
    }
    const q = new addon.NFQueue();
    try {
      q.bindings.open(queue, bufferBytes);
    } catch (e) {
      throw new Error(`cannot bind NFQUEUE ${queue}: ${(e as Error).message} (needs CAP_NET_ADMIN, the nfnetlink_queue module, and no other process on that queue)`);
    }
    this.handle = q.bindings;
    q.bindings.read((info, payload) => {
      if (!this.closed) onPacket({ id: info.id, payload, mark: info.nfmark });
    });
  }

  verdict(id: number, verdict: number, mark: number | null, packet: Uint8Array | null): void {
    if (this.closed) return;
    const buf = packet === null ? null : Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    if (mark !== null) this.handle.setVerdict(id, verdict, mark, buf);
    else this.handle.setVerdict(id, verdict, buf);
  }

  close(): void {
    this.closed = true;
  }

  stats(): null {
    return null;
  }
}

export interface NfQueueOptions {
  /** The netlink socket's receive buffer. Default 8 MiB. */
  bufferBytes?: number;
  /** Packets the kernel holds for the queue (native binding only). Default DEFAULT_MAX_QUEUE_LEN. */
  maxQueueLen?: number;
}

export class NfQueue {
  private verdicts = 0;

  private constructor(
    readonly queue: number,
    private readonly binding: Binding,
  ) {}

  /**
   * Binds queue `queue` and calls onPacket for each packet. Throws with a message that says how to
   * fix it when no binding is built or the kernel refuses the queue (missing module, privileges,
   * or another process already bound to it).
   */
  static open(queue: number, onPacket: (p: QueuedPacket) => void, opts: NfQueueOptions = {}): NfQueue {
    const o = { bufferBytes: 8 * 1024 * 1024, maxQueueLen: DEFAULT_MAX_QUEUE_LEN, ...opts };
    // Either binding's error names the queue and the fix.
    return new NfQueue(queue, nativeNfq !== null ? new NativeBinding(queue, o, onPacket, nativeNfq) : new NpmBinding(queue, o, onPacket));
  }

  /** Lets the packet continue, optionally replaced by `packet` and with a new fwmark (non-zero). */
  accept(id: number, packet?: Uint8Array, mark?: number): void {
    this.verdicts++;
    this.binding.verdict(id, NF_ACCEPT, mark === undefined || mark === 0 ? null : mark, packet ?? null);
  }

  drop(id: number): void {
    this.verdicts++;
    this.binding.verdict(id, NF_DROP, null, null);
  }

  /**
   * Sends what is pending and unbinds (native binding): the kernel drops whatever it still holds
   * for us. Later verdicts are ignored. The npm binding cannot unbind; it stops handing packets on.
   */
  close(): void {
    this.binding.close();
  }

  get verdictCount(): number {
    return this.verdicts;
  }

  /** Which binding carries this queue. */
  get bindingName(): 'native' | 'nfqueue' {
    return this.binding.name;
  }

  stats(): NfqStats | null {
    return this.binding.stats();
  }
}
