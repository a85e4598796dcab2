// NFQUEUE through the `nfqueue` addon (libnetfilter_queue). The kernel hands us whole IP packets
// (no link header) with an id; every packet must get exactly one verdict, now or later. A held
// packet keeps its id until the engine releases it, so a released SYN leaves through the kernel
// path it came in on (with its conntrack entry) instead of being re-injected.
//
// Without a reader on the queue the kernel drops queued packets (we never set `bypass`): a
// stopped daemon fails closed.

/** The verdict codes of linux/netfilter.h. */
const NF_DROP = 0;
const NF_ACCEPT = 1;

export interface QueuedPacket {
  /** The kernel's packet id, for the verdict. */
  id: number;
  /** The IP packet (a private copy). */
  payload: Buffer;
  /** The packet's fwmark (meta mark) as queued. */
  mark: number;
}

interface NfqueueBinding {
  NFQueue: new () => {
    bindings: {
      open(queue: number, bufferBytes: number): void;
      read(cb: (info: { id: number; nfmark: number }, payload: Buffer) => void): void;
      setVerdict(id: number, verdict: number, markOrBuffer: number | Buffer | null, buffer?: Buffer | null): void;
    };
  };
}

export class NfQueue {
  private verdicts = 0;

  private constructor(
    readonly queue: number,
    private readonly handle: InstanceType<NfqueueBinding['NFQueue']>['bindings'],
  ) {}

  /**
   * Binds queue `queue` and calls onPacket for each packet. Throws with a message that says how to
   * fix it when the addon is unbuilt or the kernel refuses the queue (missing module, privileges,
   * or another process already bound to it).
   */
  static open(queue: number, onPacket: (p: QueuedPacket) => void, bufferBytes = 8 * 1024 * 1024): NfQueue {
    let binding: NfqueueBinding;
    try {
      // Loaded here, not imported: a missing build must become an error that says how to fix it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      binding = require('nfqueue') as NfqueueBinding;
    } catch (e) {
      throw new Error(`the nfqueue addon does not load (${(e as Error).message}); install with npm and allowScripts so it is built, with libnetfilter-queue-dev present`);
    }
    const q = new binding.NFQueue();
    try {
      q.bindings.open(queue, bufferBytes);
    } catch (e) {
      throw new Error(`cannot bind NFQUEUE ${queue}: ${(e as Error).message} (needs CAP_NET_ADMIN, the nfnetlink_queue module, and no other process on that queue)`);
    }
    const nfq = new NfQueue(queue, q.bindings);
    q.bindings.read((info, payload) => onPacket({ id: info.id, payload, mark: info.nfmark }));
    return nfq;
  }

  /** Lets the packet continue, optionally replaced by `packet` and with a new fwmark (non-zero). */
  accept(id: number, packet?: Uint8Array, mark?: number): void {
    this.verdicts++;
    const buf = packet === undefined ? null : Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    if (mark !== undefined && mark !== 0) this.handle.setVerdict(id, NF_ACCEPT, mark, buf);
    else this.handle.setVerdict(id, NF_ACCEPT, buf);
  }

  drop(id: number): void {
    this.verdicts++;
    this.handle.setVerdict(id, NF_DROP, null);
  }

  get verdictCount(): number {
    return this.verdicts;
  }
}
