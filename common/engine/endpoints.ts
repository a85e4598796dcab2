// Sets of protected endpoints (address or CIDR range, and port), looked up on every packet.
// A port prefilter answers "no" for unrelated traffic before any address is compared.
import { type Cidr, parseCidr } from '../protocol/cidr';

export interface EndpointRule<M> {
  /** An address or CIDR range, e.g. "10.0.0.5", "10.0.0.0/24", "fd00::/64". */
  cidr: Cidr;
  port: number;
  meta: M;
}

export class EndpointSet<M> {
  private readonly byPort = new Map<number, EndpointRule<M>[]>();
  private readonly networks: Cidr[] = [];

  constructor(rules: readonly EndpointRule<M>[]) {
    for (const rule of rules) {
      const list = this.byPort.get(rule.port) ?? [];
      // Longest prefix first, so the most specific rule wins.
      list.push(rule);
      list.sort((a, b) => b.cidr.prefix - a.cidr.prefix);
      this.byPort.set(rule.port, list);
      this.networks.push(rule.cidr);
    }
  }

  /** The rule covering (addr, port), if any. */
  match(addr: Uint8Array, port: number): EndpointRule<M> | undefined {
    return this.matchAt(addr, 0, addr.length, port);
  }

  /** match() for the address bytes[at, at + length) (4 or 16 bytes), read in place: no view per packet. */
  matchAt(bytes: Uint8Array, at: number, length: number, port: number): EndpointRule<M> | undefined {
    const list = this.byPort.get(port);
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) if (containsAt(list[i]!.cidr, bytes, at, length)) return list[i];
    return undefined;
  }

  /** Whether any rule covers this address on any port (used for fragments, which carry no ports). */
  coversAddress(addr: Uint8Array): boolean {
    return this.networks.some((c) => containsAt(c, addr, 0, addr.length));
  }

  get size(): number {
    return this.networks.length;
  }
}

/** cidrContains (protocol/cidr.ts) for an address at an offset: same family only, prefix bits equal. */
function containsAt(cidr: Cidr, bytes: Uint8Array, at: number, length: number): boolean {
  const network = cidr.network;
  if (length !== network.length || at < 0 || at + length > bytes.length) return false;
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) if (bytes[at + i] !== network[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((bytes[at + full] as number) & mask) === network[full];
}

/** Parses "ADDR:PORT", "[V6ADDR]:PORT" or "CIDR:PORT"; the error names the text. */
export function parseEndpoint(text: string): { cidr: Cidr; port: number } | string {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^[\]]+):(\d{1,5})$/.exec(text);
  if (m === null) return `'${text}' is not ADDR:PORT (IPv6 as [ADDR]:PORT)`;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `port ${port} in '${text}' is not 1..65535`;
  const cidr = parseCidr(m[1] as string);
  if (!cidr.ok) return cidr.error;
  return { cidr: cidr.value, port };
}
