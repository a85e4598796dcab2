// Sends whole IP packets that an engine originates (a RST refusing a flow, a re-sent SYN, a SYN
// released after its queue entry was lost) through `raw-socket`: IPPROTO_RAW sockets, so the
// header we built goes out as is, IPv4 and IPv6. Every packet carries our fwmark, so the nft
// rules let it through instead of queueing it back to us.
const IPPROTO_RAW = 255;
/** linux/socket.h: not exported by the addon. */
const SO_MARK = 36;

interface RawSocket {
  setOption(level: number, option: number, value: number): void;
  send(buf: Buffer, offset: number, length: number, address: string, cb: (error: Error | null, bytes?: number) => void): void;
  close(): void;
  on(event: 'error', cb: (e: Error) => void): void;
}

interface RawBinding {
  createSocket(o: { protocol: number; addressFamily: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
  SocketLevel: { SOL_SOCKET: number };
}

function loadRaw(): RawBinding {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('raw-socket') as RawBinding;
  } catch (e) {
    throw new Error(`the raw-socket addon does not load (${(e as Error).message}); install with npm and allowScripts so it is built`);
  }
}

/** Formats the destination address of an IP packet, or null when the header is too short. */
export function destinationOf(packet: Uint8Array): string | null {
  const version = (packet[0] ?? 0) >> 4;
  if (version === 4 && packet.length >= 20) return packet.subarray(16, 20).join('.');
  if (version === 6 && packet.length >= 40) {
    const groups: string[] = [];
    for (let i = 24; i < 40; i += 2) groups.push(((packet[i]! << 8) | packet[i + 1]!).toString(16));
    return groups.join(':');
  }
  return null;
}

export class RawSender {
  private v4: RawSocket | null = null;
  private v6: RawSocket | null = null;
  private readonly binding = loadRaw();
  sent = 0;
  failed = 0;

  constructor(
    private readonly mark: number,
    private readonly onError: (reason: string) => void = () => undefined,
  ) {}

  private socket(version: 4 | 6): RawSocket {
    const existing = version === 4 ? this.v4 : this.v6;
    if (existing !== null) return existing;
    const s = this.binding.createSocket({ protocol: IPPROTO_RAW, addressFamily: version === 4 ? this.binding.AddressFamily.IPv4 : this.binding.AddressFamily.IPv6 });
    s.on('error', (e) => this.onError(`raw IPv${version} socket: ${e.message}`));
    s.setOption(this.binding.SocketLevel.SOL_SOCKET, SO_MARK, this.mark);
    if (version === 4) this.v4 = s;
    else this.v6 = s;
    return s;
  }

  /** Opens both sockets now, so that missing privileges show at start-up, not at the first RST. */
  open(): void {
    this.socket(4);
    this.socket(6);
  }

  send(packet: Uint8Array): void {
    const dst = destinationOf(packet);
    if (dst === null) {
      this.failed++;
      this.onError('raw send: not an IP packet');
      return;
    }
    const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    this.socket((packet[0]! >> 4) as 4 | 6).send(buf, 0, buf.length, dst, (error) => {
      if (error) {
        this.failed++;
        this.onError(`raw send to ${dst}: ${error.message}`);
      } else this.sent++;
    });
  }

  close(): void {
    this.v4?.close();
    this.v6?.close();
    this.v4 = this.v6 = null;
  }
}
